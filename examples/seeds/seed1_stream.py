"""First seed, sync streaming: each chunk printed as it arrives, '|' between chunks."""

from langchain_openai import OpenAI

llm = OpenAI(model="gpt-3.5-turbo-instruct", temperature=0, max_tokens=512)
for chunk in llm.stream("Write me a 1 verse song about sparkling water."):
    print(chunk, end="|", flush=True)  # use | as the separator
print()
