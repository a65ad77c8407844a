"""Second seed: concurrency control with asyncio.Semaphore(5)."""

import asyncio

from openai import AsyncOpenAI


async def generate_text(prompt, client, semaphore):
    async with semaphore:
        response = await client.chat.completions.create(
            model="gpt-3.5-turbo", messages=[{"role": "user", "content": prompt}]
        )
        return response.choices[0].message.content


async def main():
    prompts = [f"Tell me a fact about number {i}" for i in range(100)]
    max_concurrent_requests = 5
    semaphore = asyncio.Semaphore(max_concurrent_requests)
    async with AsyncOpenAI() as client:
        tasks = [generate_text(prompt, client, semaphore) for prompt in prompts]
        results = await asyncio.gather(*tasks)
    for prompt, result in zip(prompts, results, strict=True):
        print(f"Prompt: {prompt}\nResponse: {result}\n")


asyncio.run(main())
