"""Ask a model served behind an OpenAI-compatible chat-completions endpoint (vLLM, SGLang,
hosted APIs) every exported question, writing each answer as it arrives.

One request per row: a user message with the row's image(s) as PNG data URLs, then the
text: a multiple-choice question, its options as "A. ..." lines and "Answer with the
option's letter from the given choices directly."; an open question or an extraction prompt
as exported (its answer grammar or JSON Schema is stated in it). Temperature 0, at most
`max_tokens` tokens in the reply (an extraction answer lists up to a hundred relations:
EXTRACTION_TOKENS).

Answers go to a JSON Lines file (predictions.read_jsonl's format with the row's question
text, plus the model and the tokens used), one whole line per answer, flushed as it arrives.
A rerun reads it and asks only what has no line, so a killed run loses at most the requests
in flight (--concurrency); a file made on another export (an id, index or question text
that differs) is refused before any request is sent.
Rate limits (429), server errors (5xx), timeouts and dropped connections are retried with
exponential backoff (a server's Retry-After is honoured); a refused key, model or endpoint
(401, 403, 404) stops the run; other refusals (400) leave that row unanswered and counted.

The API key is read from an environment variable and given to the client only: it is never
printed or written.
"""

import json
import os
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from ...core import rng
from ...launcher import progress
from . import predictions
from .exported import LETTERS, Export, Item, PromptRow
from .predictions import key

INSTRUCTION = "Answer with the option's letter from the given choices directly."
MAX_WAIT = 60.0
EXTRACTION_TOKENS = 8192


class RunStopped(Exception):
    """The endpoint refused the run itself (key, model or address); the message says how."""


@dataclass(frozen=True)
class Settings:
    endpoint: str
    model: str
    concurrency: int = 4
    timeout: float = 120.0  # seconds per request
    retries: int = 6
    retry_wait: float = 2.0  # seconds before the first retry; doubles after each
    max_tokens: int = 1024
    api_key_env: str = "OPENAI_API_KEY"


def prompt(item: Item | PromptRow) -> str:
    if not item.options:
        return item.question
    lines = [item.question, *(f"{LETTERS[k]}. {o}" for k, o in enumerate(item.options))]
    return "\n".join([*lines, INSTRUCTION])


def messages(item: Item, images: list[str]) -> list[dict]:
    content = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64}"}}
               for b64 in images]
    content.append({"type": "text", "text": prompt(item)})
    return [{"role": "user", "content": content}]


def answered(path: Path, export: Export, model: str) -> set:
    """The rows (predictions.key) the file already answers. A last line cut short by a
    kill is removed, so the file stays whole lines. A file of another model, or one whose
    ids, indices or question texts differ from the export (made on another export), is
    refused naming the first difference."""
    if not path.exists():
        return set()
    data = path.read_bytes()
    whole = data[:data.rfind(b"\n") + 1]
    if len(whole) < len(data):
        with open(path, "r+b") as f:
            f.truncate(len(whole))
    replies = predictions.read_jsonl(path, export)
    for number, line in enumerate(whole.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if "question" not in row:
            raise RunStopped(f"--predictions {path} line {number} has no question text, so "
                             "it cannot be checked against the export: give another file")
        if row.get("model") != model:
            raise RunStopped(f"--predictions {path} holds answers of model "
                             f"{row.get('model')!r}, not {model!r}: give another file")
    keys = {(row.file, row.index): key(row) for row in export.rows()}
    return {keys[place] for place in replies}


def _retryable(exc) -> float | None:
    """Seconds the server asks to wait (0 if it does not say) when `exc` is worth a retry,
    None when it is not; RunStopped when the run cannot work at all."""
    import openai

    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError,
                        openai.NotFoundError)):
        raise RunStopped(f"the endpoint refused the request ({exc.status_code}): "
                         f"{exc.message}") from None
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        return 0.0
    if isinstance(exc, openai.APIStatusError) and (exc.status_code in (408, 409, 429)
                                                   or exc.status_code >= 500):
        try:
            return min(float(exc.response.headers.get("retry-after", 0)), MAX_WAIT)
        except ValueError:
            return 0.0
    return None


def ask(client, settings: Settings, item: Item, images: list[str], stop: threading.Event):
    """The model's reply to one row: (text, prompt tokens, completion tokens), or the last
    error when it could not be had (retries spent, or a refusal of this row)."""
    import openai

    for attempt in range(settings.retries + 1):
        try:
            reply = client.chat.completions.create(
                model=settings.model, messages=messages(item, images), temperature=0,
                max_tokens=max(settings.max_tokens, EXTRACTION_TOKENS)
                if item.form == "extraction" else settings.max_tokens)
        except openai.OpenAIError as exc:
            asked = _retryable(exc)
            if asked is None or attempt == settings.retries:
                return exc
            # exponential backoff, spread by a fixed fraction per row and attempt
            spread = 1 + rng.h(f"{item.question_id}:{attempt}") % 1000 / 4000
            if stop.wait(min(max(asked, settings.retry_wait * 2 ** attempt * spread),
                             MAX_WAIT)):
                return exc
            continue
        usage = reply.usage
        return (reply.choices[0].message.content or "",
                getattr(usage, "prompt_tokens", 0) or 0,
                getattr(usage, "completion_tokens", 0) or 0)


def _by_file(todo: list[Item]) -> dict[str, list[Item]]:
    out: dict[str, list[Item]] = {}
    for item in todo:
        out.setdefault(item.file, []).append(item)
    return out


def dry_run(export: Export, items: list[Item], path: Path, model: str) -> str:
    """What a run would send: the number of requests and images."""
    done = answered(path, export, model)
    todo = [i for i in items if key(i) not in done]
    images = 0
    for stem, rows in _by_file(todo).items():
        pictures = export.images_of(stem)
        images += sum(len(pictures[i.index]) for i in rows)
    return (f"dry run: {len(todo)} requests with {images} images ({len(done)} rows already "
            f"answered in {path.name}); nothing was sent")


def _ask_all(pool, job, export: Export, todo: list[Item], concurrency: int) -> None:
    """job(row, its pictures) for every row, file by file, never more than --concurrency
    requests in flight (so a kill loses at most that many); a job's error is raised."""
    for stem, file_rows in _by_file(todo).items():
        images = export.images_of(stem)
        rows, running = iter(file_rows), set()
        while True:
            for item in rows:
                running.add(pool.submit(job, item, images[item.index]))
                if len(running) == concurrency:
                    break
            if not running:
                break
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                future.result()


def run(export: Export, items: list[Item], path: Path, settings: Settings) -> dict:
    """Ask every row of `items` not yet answered in `path`; returns counts. Each answer is
    written by the thread that received it, so the requests in flight when the run is
    interrupted (Ctrl-C: it waits for them) are written too."""
    import openai

    done = answered(path, export, settings.model)
    todo = [i for i in items if key(i) not in done]
    api_key = os.environ.get(settings.api_key_env)
    client = openai.OpenAI(base_url=settings.endpoint, api_key=api_key or "EMPTY",
                           timeout=settings.timeout, max_retries=0)
    failed, stop, lock = [], threading.Event(), threading.Lock()
    tokens = {"in": 0, "out": 0}
    ticker = progress.Ticker("asking", unit="rows",
                             detail=lambda: f"tokens {tokens['in']} in, {tokens['out']} out")

    def tally(tokens_in: int, tokens_out: int) -> None:  # one row done, under `lock`
        tokens["in"] += tokens_in
        tokens["out"] += tokens_out
        ticker(ticker.done + 1, len(todo))

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "a", encoding="utf-8") as out, \
                ThreadPoolExecutor(settings.concurrency) as pool:

            def job(item: Item, images: list[str]) -> None:
                result = ask(client, settings, item, images, stop)
                with lock:
                    if isinstance(result, Exception):
                        failed.append((item, result))
                        tally(0, 0)
                        return
                    text, tokens_in, tokens_out = result
                    out.write(json.dumps({
                        "question_id": item.question_id, "form": item.form,
                        "rotation": item.rotation, "index": item.index,
                        "question": item.question, "answer": text,
                        "model": settings.model, "prompt_tokens": tokens_in,
                        "completion_tokens": tokens_out}) + "\n")
                    out.flush()
                    tally(tokens_in, tokens_out)

            try:
                _ask_all(pool, job, export, todo, settings.concurrency)
            except BaseException:
                stop.set()  # backoff waits end at once; requests in flight finish, written
                raise
    finally:
        ticker.close()
    return {"asked": len(todo), "already": len(done), "failed": failed,
            "tokens_in": tokens["in"], "tokens_out": tokens["out"]}
