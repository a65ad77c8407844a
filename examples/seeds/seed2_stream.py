"""Second seed: stream=True, print each delta as it arrives, return the full response."""

import asyncio

from openai import AsyncOpenAI


async def stream_text(prompt, client):
    stream = await client.chat.completions.create(
        model="gpt-3.5-turbo", messages=[{"role": "user", "content": prompt}], stream=True
    )
    full_response = ""
    async for chunk in stream:
        if chunk.choices[0].delta.content is not None:
            content = chunk.choices[0].delta.content
            full_response += content
            print(content, end="", flush=True)
    print("\n")
    return full_response


async def main():
    prompt = "Write a short story about a time-traveling scientist."
    async with AsyncOpenAI() as client:
        result = await stream_text(prompt, client)
    print(f"Full response:\n{result}")


asyncio.run(main())
