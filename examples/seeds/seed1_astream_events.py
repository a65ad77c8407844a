"""First seed, async event streaming (version="v1" as written), stopping after 5 events."""

import asyncio

from langchain_openai import OpenAI


async def main() -> None:
    llm = OpenAI(model="gpt-3.5-turbo-instruct", temperature=0, max_tokens=512)
    idx = 0
    async for event in llm.astream_events(
        "Write me a 1 verse song about goldfish on the moon", version="v1"
    ):
        idx += 1
        if idx >= 5:  # truncate the output
            print("...Truncated")
            break
        print(event)


asyncio.run(main())
