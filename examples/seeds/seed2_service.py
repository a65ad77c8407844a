"""Second seed: a FastAPI service, POST /generate, with a background logging task.

As written it binds 0.0.0.0:8000; HOST and PORT override that (the test suite
binds loopback).
"""

import asyncio
import os

from fastapi import BackgroundTasks, FastAPI
from openai import AsyncOpenAI
from pydantic import BaseModel

app = FastAPI()
client = AsyncOpenAI()


class GenerationRequest(BaseModel):
    prompt: str


class GenerationResponse(BaseModel):
    generated_text: str


@app.post("/generate", response_model=GenerationResponse)
async def generate_text(request: GenerationRequest, background_tasks: BackgroundTasks):
    response = await client.chat.completions.create(
        model="gpt-3.5-turbo", messages=[{"role": "user", "content": request.prompt}]
    )
    generated_text = response.choices[0].message.content
    # simulate some post-processing in the background
    background_tasks.add_task(log_generation, request.prompt, generated_text)
    return GenerationResponse(generated_text=generated_text)


async def log_generation(prompt: str, generated_text: str):
    # simulate logging or additional processing
    await asyncio.sleep(float(os.environ.get("LOG_DELAY", "2")))
    print(f"Logged: Prompt '{prompt}' generated text of length {len(generated_text)}", flush=True)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(
        app, host=os.environ.get("HOST", "0.0.0.0"), port=int(os.environ.get("PORT", "8000"))
    )
