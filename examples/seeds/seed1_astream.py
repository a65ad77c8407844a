"""First seed, async streaming: the same song through astream()."""

import asyncio

from langchain_openai import OpenAI


async def main() -> None:
    llm = OpenAI(model="gpt-3.5-turbo-instruct", temperature=0, max_tokens=512)
    async for chunk in llm.astream("Write me a 1 verse song about sparkling water."):
        print(chunk, end="|", flush=True)  # use | as the separator
    print()


asyncio.run(main())
