"""Second seed: AsyncOpenAI and asyncio.gather over three prompts."""

import asyncio

from openai import AsyncOpenAI


async def generate_text(prompt, client):
    response = await client.chat.completions.create(
        model="gpt-3.5-turbo", messages=[{"role": "user", "content": prompt}]
    )
    return response.choices[0].message.content


async def main():
    prompts = [
        "Explain quantum computing in simple terms.",
        "Write a haiku about artificial intelligence.",
        "Describe the process of photosynthesis.",
    ]
    async with AsyncOpenAI() as client:
        tasks = [generate_text(prompt, client) for prompt in prompts]
        results = await asyncio.gather(*tasks)
    for prompt, result in zip(prompts, results, strict=True):
        print(f"Prompt: {prompt}\nResponse: {result}\n")


asyncio.run(main())
