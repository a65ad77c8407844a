"""Second seed, asyncio basics: three greetings gathered, done in about one second."""

import asyncio


async def greet(name):
    await asyncio.sleep(1)  # simulate an I/O operation
    print(f"Hello, {name}!")


async def main():
    await asyncio.gather(greet("Alice"), greet("Bob"), greet("Charlie"))


asyncio.run(main())
