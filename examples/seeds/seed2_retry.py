"""Second seed: tenacity retries, and a fallback result so one failure does not sink the batch.

As written, the wait is exponential between 4 and 10 seconds; SEED_RETRY_WAIT_SCALE
shrinks it (the test suite sets it so a run with injected faults takes seconds).
"""

import asyncio
import os

from openai import AsyncOpenAI
from tenacity import retry, stop_after_attempt, wait_exponential

SCALE = float(os.environ.get("SEED_RETRY_WAIT_SCALE", "1"))


class APIError(Exception):
    pass


@retry(
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=1 * SCALE, min=4 * SCALE, max=10 * SCALE),
)
async def generate_text_with_retry(prompt, client):
    try:
        response = await client.chat.completions.create(
            model="gpt-3.5-turbo", messages=[{"role": "user", "content": prompt}]
        )
        return response.choices[0].message.content
    except Exception as e:
        print(f"Error occurred: {e}")
        raise APIError("Failed to generate text") from e


async def process_prompt(prompt, client, semaphore):
    async with semaphore:
        try:
            result = await generate_text_with_retry(prompt, client)
            return prompt, result
        except Exception:  # tenacity raises RetryError wrapping the last APIError
            return prompt, "Failed to generate response after multiple attempts."


async def main():
    prompts = [f"Tell me a fact about number {i}" for i in range(20)]
    max_concurrent_requests = 5
    semaphore = asyncio.Semaphore(max_concurrent_requests)
    async with AsyncOpenAI(max_retries=0) as client:
        tasks = [process_prompt(prompt, client, semaphore) for prompt in prompts]
        results = await asyncio.gather(*tasks)
    for prompt, result in results:
        print(f"Prompt: {prompt}\nResponse: {result}\n")


asyncio.run(main())
