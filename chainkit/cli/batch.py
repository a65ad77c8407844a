"""``chainkit batch``: run a chain over a JSONL file of inputs, into a resumable JSONL file."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from chainkit.cli._app import EXIT_FAILED, EXIT_OK, EXIT_USAGE, app, fail
from chainkit.cli._otlp import OtlpOpt, otlp_handler


class StrategyChoice(StrEnum):
    sliding = "sliding"
    fixed_batches = "fixed-batches"
    abatch = "abatch"
    gather = "gather"


class BackendChoice(StrEnum):
    local = "local"
    ray = "ray"
    openai_batch = "openai-batch"


JOB_COMMANDS = ("status", "cancel")  # chainkit batch status|cancel --output FILE


@app.command("batch")
def batch(
    chain: Annotated[
        str,
        typer.Argument(
            help="Chain name (`chainkit chains` lists them); or `status` / `cancel` with "
            "--output: show or cancel the provider batches behind a results file."
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="JSONL result file: a header line, then one record per input."
        ),
    ],
    input_path: Annotated[
        Path | None,
        typer.Option(
            "--input",
            "-i",
            help="JSONL file: one JSON object of template variables per line "
            '(an "id" field, when present, names the record).',
        ),
    ] = None,
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
            help="Where items run: this process, a Ray cluster (pip install 'chainkit\\[ray]'), "
            "or the provider's Batch API (openai-batch: half the price, results within 24 h)."
        ),
    ] = BackendChoice.local,
    batch_max_requests: Annotated[
        int,
        typer.Option(
            "--batch-max-requests", min=1, help="With --backend openai-batch: requests per file."
        ),
    ] = 50_000,
    batch_max_mb: Annotated[
        float,
        typer.Option(
            "--batch-max-mb", min=0.001, help="With --backend openai-batch: MB per batch file."
        ),
    ] = 200.0,
    poll_interval: Annotated[
        float,
        typer.Option(
            "--poll-interval",
            min=0.001,
            help="With --backend openai-batch: seconds before the first look at a batch "
            "(growing to 60 s).",
        ),
    ] = 5.0,
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
    otlp: OtlpOpt = False,
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

    if chain in JOB_COMMANDS:
        return _batch_jobs(chain, output)
    if input_path is None:
        raise typer.BadParameter("missing option '--input' (a JSONL file of inputs)")
    if retry_failed and not resume:
        raise typer.BadParameter("--retry-failed needs --resume (it re-runs the failed records)")
    if otlp and backend is not BackendChoice.local:
        where = "in the Ray workers" if backend is BackendChoice.ray else "at the provider"
        raise fail(
            f"--otlp needs --backend local (with {backend.value} the calls run {where}, "
            "not in this process); drop --otlp, or use --backend local",
            EXIT_USAGE,
        )
    provider = None
    if backend is BackendChoice.openai_batch:
        from chainkit.runners import ProviderBatchSettings

        provider = ProviderBatchSettings(
            max_requests=batch_max_requests,
            max_bytes=max(1024, int(batch_max_mb * 1024 * 1024)),
            poll_interval=poll_interval,
            poll_max=max(60.0, poll_interval),
        )
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
        provider=provider,
    )
    otel = otlp_handler(otlp)  # after the options are valid: nothing to shut down before
    if otel is not None:
        options = dataclasses.replace(options, callbacks=[*callbacks, otel])
    hints = logging.getLogger("chainkit.runners._recorder")
    hints.addFilter(_drop_resume_hint)  # Ctrl-C: the one line below says how to resume
    try:
        report = asyncio.run(run_batch(runnable, input_path, options=options))
    except KeyboardInterrupt:
        line = _still_running(output) if provider is not None else _interrupted(output)
        typer.echo(line, err=True)
        raise typer.Exit(130) from None
    finally:
        hints.removeFilter(_drop_resume_hint)
        if otel is not None:
            otel.shutdown()
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


def _drop_resume_hint(record: logging.LogRecord) -> bool:
    return not getattr(record, "resume_hint", False)


def _interrupted(output: Path) -> str:
    """The one line Ctrl-C prints: where the finished items are, and how to go on."""
    return (
        f"chainkit: interrupted; finished items are in {output}: run the same command "
        "with --resume to do the rest"
    )


def _still_running(output: Path) -> str:
    """The one line Ctrl-C prints for a provider batch: its batches keep running."""
    from chainkit.runners._batch_journal import journal_path, read_journal

    running = [e for e in read_journal(journal_path(output)) if e.batch_id and not e.collected]
    return (
        f"chainkit: interrupted; {len(running)} batches keep running at the provider: rerun "
        f"the same command with --resume to collect them, or cancel them with "
        f"chainkit batch cancel --output {output}"
    )


def _batch_jobs(command: str, output: Path) -> int:
    """``chainkit batch status|cancel --output FILE``."""
    from chainkit.runners._provider_report import batch_jobs, cancel_batch_jobs, format_jobs

    run = cancel_batch_jobs if command == "cancel" else batch_jobs
    jobs = asyncio.run(run(output))
    typer.echo(format_jobs(jobs))
    return EXIT_FAILED if any(job.state is None for job in jobs) else EXIT_OK
