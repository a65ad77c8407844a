"""Second seed: 100 prompts processed in fixed batches of 10, each batch gathered."""

import asyncio

from openai import AsyncOpenAI


async def process_batch(batch, client):
    responses = await asyncio.gather(
        *[
            client.chat.completions.create(
                model="gpt-3.5-turbo", messages=[{"role": "user", "content": prompt}]
            )
            for prompt in batch
        ]
    )
    return [response.choices[0].message.content for response in responses]


async def main():
    prompts = [f"Tell me a fact about number {i}" for i in range(100)]
    batch_size = 10
    async with AsyncOpenAI() as client:
        results = []
        for i in range(0, len(prompts), batch_size):
            batch = prompts[i : i + batch_size]
            batch_results = await process_batch(batch, client)
            results.extend(batch_results)
    for prompt, result in zip(prompts, results, strict=True):
        print(f"Prompt: {prompt}\nResponse: {result}\n")


asyncio.run(main())
