"""Second seed: three stories written concurrently, each streamed through a callback.

The seed used LLMChain, chain.arun and AsyncCallbackManager, which LangChain has
retired; this is the same program in LCEL, with the streaming handler passed in
RunnableConfig as today's LangChain does it.
"""

import asyncio

from langchain_core.callbacks import StreamingStdOutCallbackHandler
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import PromptTemplate
from langchain_openai import OpenAI


async def generate_story(topic):
    llm = OpenAI(temperature=0.7, streaming=True)
    prompt = PromptTemplate(
        input_variables=["topic"], template="Write a short story about {topic}."
    )
    chain = prompt | llm | StrOutputParser()
    return await chain.ainvoke(
        {"topic": topic}, config={"callbacks": [StreamingStdOutCallbackHandler()]}
    )


async def main():
    topics = ["a magical forest", "a futuristic city", "an underwater civilization"]
    tasks = [generate_story(topic) for topic in topics]
    stories = await asyncio.gather(*tasks)
    for topic, story in zip(topics, stories, strict=True):
        print(f"\nTopic: {topic}\nStory: {story}\n{'=' * 50}\n")


asyncio.run(main())
