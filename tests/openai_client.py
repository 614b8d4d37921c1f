"""The official `openai` Python client against a running `seft serve` (tests/serve.rs runs it).

Usage: python3 tests/openai_client.py BASE_URL MODEL API_KEY
Checks chat, streaming (streamed text equals the non-streamed text for the same seed, usage
in the last chunk), completions with logprobs and echo, chat logprobs, and that errors arrive
as the client's typed exceptions. Prints one JSON line of what it saw.
"""

import json
import sys

import openai

base_url, model, api_key = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=120)
seen = {"openai_version": openai.__version__}

models = [m.id for m in client.models.list().data]
assert models == [model], models

messages = [{"role": "user", "content": "Name three colors."}]
chat = client.chat.completions.create(
    model=model, messages=messages, max_tokens=24, temperature=0.8, seed=5
)
text = chat.choices[0].message.content
assert text, chat
assert chat.usage.completion_tokens > 0, chat.usage
seen["chat"] = text

chunks = list(
    client.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=24,
        temperature=0.8,
        seed=5,
        stream=True,
        stream_options={"include_usage": True},
    )
)
streamed = "".join(
    c.choices[0].delta.content or "" for c in chunks if c.choices
)
assert streamed == text, (streamed, text)
assert chunks[-1].usage.completion_tokens == chat.usage.completion_tokens, chunks[-1]
finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
assert finish == [chat.choices[0].finish_reason], finish
seen["stream_chunks"] = len(chunks)

lp = client.chat.completions.create(
    model=model, messages=messages, max_tokens=4, temperature=0, logprobs=True, top_logprobs=3
)
content = lp.choices[0].logprobs.content
assert len(content) >= 1 and all(len(t.top_logprobs) == 3 for t in content), content
assert all(t.logprob <= 0 for t in content)
assert content[0].top_logprobs[0].logprob >= content[0].logprob

prompt = "The capital of France is"
comp = client.completions.create(
    model=model, prompt=prompt, max_tokens=8, temperature=0, logprobs=2
)
c = comp.choices[0]
assert len(c.logprobs.tokens) == comp.usage.completion_tokens, c.logprobs
assert "".join(c.logprobs.tokens) == c.text, (c.logprobs.tokens, c.text)
assert all(x <= 0 for x in c.logprobs.token_logprobs)
assert all(len(t) <= 2 for t in c.logprobs.top_logprobs)
seen["completion"] = c.text

echo = client.completions.create(
    model=model, prompt=prompt, max_tokens=1, temperature=0, logprobs=1, echo=True
)
e = echo.choices[0]
assert e.text.startswith(prompt), e.text
assert e.logprobs.token_logprobs[0] is None, e.logprobs.token_logprobs
prompt_tokens = echo.usage.prompt_tokens
assert len(e.logprobs.tokens) == prompt_tokens + echo.usage.completion_tokens
assert all(x <= 0 for x in e.logprobs.token_logprobs[1:])
seen["echo_prompt_logprob_sum"] = sum(e.logprobs.token_logprobs[1:prompt_tokens])

try:
    client.chat.completions.create(model=model, messages=messages, max_tokens=-5)
    raise AssertionError("max_tokens -5 was accepted")
except openai.BadRequestError as err:
    assert "max_tokens" in str(err), err
try:
    openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()
    raise AssertionError("a wrong key was accepted")
except openai.AuthenticationError:
    pass

print(json.dumps(seen))
