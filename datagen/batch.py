"""Batch mode for large jobs: the OpenAI Batch API and Anthropic Message Batches (half price, hours not
seconds). Submit, poll, ingest through the same validation as live calls; resumable across restarts
because every batch id is in the job's batch_state before we wait on it.

    moodshelf generate --provider anthropic --count 5000 --batch
    moodshelf generate --resume 7          # picks up the batches job 7 was waiting for

Exactness as in live mode: a round submits only the samples still missing, results are stored by
request index (unique per job), and a batch is ingested once.
"""
from __future__ import annotations

import asyncio
import io
import json
import os

from datagen.job_runner import JobRunner, now
from datagen.pricing import estimate_cost
from datagen.providers.anthropic_provider import completion_from_message, translate_anthropic_error
from datagen.providers.base import CallError, Completion, ProviderError, TeacherTask, parse_answer
from datagen.providers.openai_provider import translate_openai_error
from db.models import GenerationJob

POLL_S = float(os.environ.get("MOODSHELF_BATCH_POLL_S", "30"))
DONE_OPENAI = ("completed", "failed", "expired", "cancelled")


def completion_from_chat(body: dict) -> Completion:
    choice = (body.get("choices") or [{}])[0]
    raw = (choice.get("message") or {}).get("content") or ""
    parsed, error = parse_answer(raw)
    if choice.get("finish_reason") == "length":
        parsed, error = None, "format:truncated(max_tokens)"
    usage = body.get("usage") or {}
    return Completion(raw=raw, parsed=parsed, parse_error=error, input_tokens=usage.get("prompt_tokens", 0),
                      output_tokens=usage.get("completion_tokens", 0), finish_reason=choice.get("finish_reason"))


class BatchRefused(ProviderError):
    """The vendor's batch endpoint answered with an error (no batch API at this URL, a refused batch...)."""


def _sdk_error(exc: BaseException, provider) -> CallError | None:
    """An openai/anthropic SDK error as a CallError (message redacted), or None for anything else."""
    if provider.name == "anthropic":
        import anthropic

        return translate_anthropic_error(exc, provider) if isinstance(exc, anthropic.AnthropicError) else None
    import openai

    return translate_openai_error(exc, provider) if isinstance(exc, openai.OpenAIError) else None


def refused(exc: BaseException, provider, what: str) -> BatchRefused | None:
    err = _sdk_error(exc, provider)
    if err is None:
        return None
    where = provider.base_url or f"the {provider.label} API"
    body = getattr(exc, "body", None)
    said = (body.get("message") or (body.get("error") or {}).get("message")) if isinstance(body, dict) else None
    reason = f"HTTP {err.http_status}: {provider.redact(str(said))}" if err.http_status and said else str(err)
    if err.http_status == 404:
        return BatchRefused(f"{where} has no batch API (the batch endpoint answered {reason}); run the job "
                            "without --batch.")
    return BatchRefused(f"The {provider.label} batch API refused to {what} ({reason}); fix that, or run the job "
                        "without --batch.")


async def _probe(provider) -> None:
    client = provider.client
    try:
        if provider.name == "openai":
            await client.batches.list(limit=1)
        else:
            await client.messages.batches.list(limit=1)
    except Exception as e:  # noqa: BLE001 - SDK errors are worded below, others pass through
        raise (refused(e, provider, "list batches") or e) from None
    finally:
        await provider.aclose()


def check_batch_api(provider) -> None:
    """Before a batch job is recorded: the batch endpoint exists and accepts our key (one cheap list call).
    Closes the provider's client: pass a provider made for the check."""
    asyncio.run(_probe(provider))


class BatchJobRunner(JobRunner):
    def custom_id(self, index: int) -> str:
        return f"job{self.job_id}-req{index}"

    # -- provider specifics ----------------------------------------------------------------------------------
    async def submit(self, tasks: list[TeacherTask]) -> str:
        try:
            return await self._submit(tasks)
        except Exception as e:  # noqa: BLE001 - an SDK error becomes one clear line; others pass through
            raise (refused(e, self.provider, f"take a batch of {len(tasks)} requests") or e) from None

    async def _submit(self, tasks: list[TeacherTask]) -> str:
        client = self.provider.client
        if self.provider.name == "openai":
            lines = [json.dumps({"custom_id": self.custom_id(t.index), "method": "POST", "url": "/v1/chat/completions",
                                 "body": self.provider.request_body(t)}, ensure_ascii=False) for t in tasks]
            f = await client.files.create(file=("batch.jsonl", io.BytesIO("\n".join(lines).encode()),
                                                "application/jsonl"), purpose="batch")
            b = await client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                            completion_window="24h")
            return b.id
        b = await client.messages.batches.create(requests=[
            {"custom_id": self.custom_id(t.index), "params": self.provider.request_body(t)} for t in tasks])
        return b.id

    async def poll(self, batch_id: str) -> bool:
        client = self.provider.client
        if self.provider.name == "openai":
            return (await client.batches.retrieve(batch_id)).status in DONE_OPENAI
        return (await client.messages.batches.retrieve(batch_id)).processing_status == "ended"

    async def results(self, batch_id: str) -> dict[str, Completion | str]:
        """custom_id -> Completion, or an error message for a request that failed inside the batch."""
        client = self.provider.client
        out: dict[str, Completion | str] = {}
        if self.provider.name == "openai":
            b = await client.batches.retrieve(batch_id)
            for file_id in (b.output_file_id, getattr(b, "error_file_id", None)):
                if not file_id:
                    continue
                content = await client.files.content(file_id)
                for line in content.text.splitlines():
                    if not line.strip():
                        continue
                    row = json.loads(line)
                    resp = row.get("response") or {}
                    if resp.get("status_code") == 200:
                        out[row["custom_id"]] = completion_from_chat(resp.get("body") or {})
                    else:
                        out[row["custom_id"]] = self.provider.redact(json.dumps(row.get("error") or resp)[:500])
            return out
        async for row in await client.messages.batches.results(batch_id):
            if row.result.type == "succeeded":
                out[row.custom_id] = completion_from_message(row.result.message)
            else:
                out[row.custom_id] = self.provider.redact(str(getattr(row.result, "error", row.result.type))[:500])
        return out

    # -- the job ---------------------------------------------------------------------------------------------
    def _save_state(self, state: dict) -> None:
        with self.db.begin() as s:
            s.get(GenerationJob, self.job_id).batch_state = json.loads(json.dumps(state))

    async def run(self) -> GenerationJob:
        accepted, done, uses = self._load_state()
        target = self.cfg.count
        requests = self.grid.sample(target * self.cfg.max_attempts_factor + len(done), seed=self.cfg.seed)
        with self.db.session() as s:
            state = dict(s.get(GenerationJob, self.job_id).batch_state or {})
        state.setdefault("kind", self.provider.name)
        state.setdefault("batches", [])
        submitted = {i for b in state["batches"] for i in b["indexes"]}
        todo = iter(i for i in range(len(requests)) if i not in done and i not in submitted)
        try:
            while True:
                pending = [b for b in state["batches"] if not b.get("ingested")]
                if not pending:
                    if accepted >= target or self._progress():
                        break
                    tasks = []
                    for _ in range(target - accepted):
                        i = next(todo, None)
                        if i is None:
                            break
                        tasks.append(self._task(i, requests[i], uses))
                    if not tasks:
                        break
                    entry = {"id": None, "indexes": [t.index for t in tasks], "ingested": False,
                             "tasks": {str(t.index): [t.instruction, t.input_text] for t in tasks}}
                    state["batches"].append(entry)
                    entry["id"] = await self.submit(tasks)
                    entry["submitted_at"] = now().isoformat()
                    self._save_state(state)  # the id is durable before we wait on it
                    continue
                batch = pending[0]
                if batch["id"] is None:  # killed between building and submitting: submit again
                    batch["id"] = await self.submit([self._task(i, requests[i], uses) for i in batch["indexes"]])
                    self._save_state(state)
                while not await self.poll(batch["id"]):
                    if self._progress():
                        raise asyncio.CancelledError("cancel requested while waiting for the batch")
                    await asyncio.sleep(POLL_S)
                accepted += self._ingest(batch, await self.results(batch["id"]), requests, uses)
                batch["ingested"] = True
                self._save_state(state)
                self._progress()
        except BatchRefused as e:  # the job ends failed with the vendor's reason (resumable), no traceback
            refusal = str(e)
        except BaseException as e:
            self._mark_interrupted(e)
            raise
        else:
            refusal = None
        finally:
            await self.provider.aclose()
        if refusal:
            return self._finish("failed", refusal)
        if accepted >= target:
            return self._finish("completed", None)
        return self._finish("failed", self._stopped_short(accepted, target, exhausted=True))

    def _ingest(self, batch: dict, results: dict, requests, uses) -> int:
        added = 0
        for i in batch["indexes"]:
            instruction, input_text = batch["tasks"][str(i)]
            task = TeacherTask(index=i, request=requests[i], instruction=instruction, input_text=input_text,
                               candidates=[], n_books=self.cfg.n_books, seed=0)
            result = results.get(self.custom_id(i), "missing from the batch results")
            if isinstance(result, str):  # the request failed inside the batch: a failed call, no sample
                self._log_batch_call(i, None, result)
                self.last_error = result
                with self.db.begin() as s:
                    s.get(GenerationJob, self.job_id).failed_calls += 1
                continue
            result.cost_usd = estimate_cost(self.provider.model, result.input_tokens, result.output_tokens,
                                            batch=True, override=self.cfg.price_override())
            self._log_batch_call(i, result, None)
            if self._store(task, result, uses) == "accepted":
                added += 1
        return added

    def _log_batch_call(self, index: int, c: Completion | None, error: str | None) -> None:
        self._log_call(index, 1, {"batch": True, "custom_id": self.custom_id(index)}, c.raw if c else None,
                       "ok" if c else "error", 200 if c else None, error or (c.parse_error if c else None),
                       c.input_tokens if c else 0, c.output_tokens if c else 0, None, c.cost_usd if c else None,
                       batch=True)
