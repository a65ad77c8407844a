"""``chainkit batch``: run a chain over a JSONL file of inputs, into a resumable JSONL file."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from chainkit.cli._app import EXIT_FAILED, EXIT_OK, app


class StrategyChoice(StrEnum):
    sliding = "sliding"
    fixed_batches = "fixed-batches"
    abatch = "abatch"
    gather = "gather"


class BackendChoice(StrEnum):
    local = "local"
    ray = "ray"


@app.command("batch")
def batch(
    chain: Annotated[str, typer.Argument(help="Chain name (`chainkit chains` lists them).")],
    input_path: Annotated[
        Path,
        typer.Option(
            "--input",
            "-i",
            help="JSONL file: one JSON object of template variables per line "
            '(an "id" field, when present, names the record).',
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="JSONL result file: a header line, then one record per input."
        ),
    ],
    max_concurrency: Annotated[
        int, typer.Option("--max-concurrency", "-c", help="Items in flight at most.")
    ] = 8,
    rpm: Annotated[
        float | None, typer.Option(help="Requests per minute for the whole batch.")
    ] = None,
    tpm: Annotated[
        float | None, typer.Option(help="Tokens per minute for the whole batch.")
    ] = None,
    retries: Annotated[int, typer.Option(help="Extra attempts per item for transient errors.")] = 3,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds per attempt (then retried).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue OUTPUT: skip inputs already recorded.")
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="With --resume, run failed inputs again.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start OUTPUT over if it exists.")
    ] = False,
    ordered: Annotated[
        bool, typer.Option("--ordered", help="Write records in input order (default: as done).")
    ] = False,
    stream: Annotated[
        bool, typer.Option("--stream", help="Stream each item (records time to first token).")
    ] = False,
    trace: Annotated[
        Path | None,
        typer.Option(
            "--trace",
            help="Also write a chainkit trace (runs, timings; chunks with --stream) to FILE.",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Model spec (default: $CHAINKIT_MODEL or local)."),
    ] = None,
    chains_dir: Annotated[
        Path | None,
        typer.Option("--chains-dir", help="Folder of chain spec files (or $CHAINKIT_CHAINS_DIR)."),
    ] = None,
    strategy: Annotated[
        StrategyChoice, typer.Option(help="How items are scheduled (sliding is the fastest).")
    ] = StrategyChoice.sliding,
    backend: Annotated[
        BackendChoice,
        typer.Option(
            help="Where items run: this process, or a Ray cluster (pip install 'chainkit[ray]')."
        ),
    ] = BackendChoice.local,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="With --backend ray: the cluster (auto, ray://HEAD:10001, HEAD:6379); "
            "default: a local Ray instance ($RAY_ADDRESS when set).",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=1, help="With --backend ray: worker actors (default: one per CPU)."
        ),
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show progress on stderr.")
    ] = True,
    json_report: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON on stdout.")
    ] = False,
) -> int:
    """Run CHAIN over every line of --input, writing one record per line to --output.

    Exit code 0 when every item succeeded, 1 when some failed (the summary on
    stderr says which and why), 2 on usage errors. Lines that are not JSON
    objects, or lack a template variable, become error records with their line
    number; they never stop the batch. Interrupted? Run the same command with
    --resume.
    """
    from chainkit.chains import get_chain
    from chainkit.runners import BatchOptions, Limits, RetryPolicy, run_batch

    runnable: Any
    if backend is BackendChoice.ray:  # each worker builds the chain by name
        from chainkit.runners import ChainRecipe

        dir_name = str(chains_dir) if chains_dir is not None else None
        runnable = ChainRecipe(chain, model=model, chains_dir=dir_name)
    else:
        runnable = get_chain(chain, model=model, chains_dir=chains_dir)
    callbacks: list[Any] = []
    if trace is not None:
        from chainkit.callbacks import StreamCapture

        callbacks.append(StreamCapture(trace))
    options = BatchOptions(
        limits=Limits(max_concurrency=max_concurrency, rpm=rpm, tpm=tpm),
        retry=RetryPolicy(attempts=retries + 1),
        timeout=timeout,
        output=output,
        resume=resume,
        retry_failed=retry_failed,
        overwrite=overwrite,
        ordered=ordered,
        stream=stream,
        callbacks=callbacks,
        progress=progress,
        strategy=strategy.value,
        name=chain,
        backend=backend.value,
        ray_address=ray_address,
        workers=workers,
    )
    report = asyncio.run(run_batch(runnable, input_path, options=options))
    if json_report:
        typer.echo(json.dumps(report.to_dict(), default=str))
    else:
        typer.echo(report.summary(), err=True)
    if report.failed:
        if not json_report:
            typer.echo(
                f"chainkit: {report.failed} of {report.done} items failed (error records in "
                f"{output}); fix them and rerun with --resume --retry-failed",
                err=True,
            )
        return EXIT_FAILED
    return EXIT_OK
