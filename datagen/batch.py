"""Batch mode for large jobs: the OpenAI Batch API and Anthropic Message Batches (half price, hours not
seconds). Submit, poll, ingest through the same validation as live calls; resumable across restarts
because every batch id is in the job's batch_state before we wait on it.

    moodshelf generate --provider anthropic --count 5000 --batch
    moodshelf generate --resume 7          # picks up the batches job 7 was waiting for

Exactness as in live mode: a round submits only the samples still missing, results are stored by
request index (unique per job), and a batch is ingested once.

The loop knows no vendor: it asks the provider for its batch operations (vendors/base.py: batch_probe,
batch_submit, batch_done, batch_results), which each vendor client implements for its own API.
"""
from __future__ import annotations

import asyncio
import json
import os

from datagen.job_runner import JobRunner, now
from datagen.pricing import estimate_cost
from datagen.providers.base import TeacherTask
from db.models import GenerationJob
from vendors.base import Completion, VendorError

POLL_S = float(os.environ.get("MOODSHELF_BATCH_POLL_S", "30"))


class BatchRefused(VendorError):
    """The vendor's batch endpoint answered with an error (no batch API at this URL, a refused batch...)."""


def refused(exc: BaseException, provider, what: str) -> BatchRefused | None:
    err = provider.sdk_error(exc)
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
    try:
        await provider.batch_probe()
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
        return await self.provider.batch_submit([(self.custom_id(t.index), t) for t in tasks])

    async def poll(self, batch_id: str) -> bool:
        return await self.provider.batch_done(batch_id)

    async def results(self, batch_id: str) -> dict[str, Completion | str]:
        """custom_id -> Completion, or an error message for a request that failed inside the batch."""
        return await self.provider.batch_results(batch_id)

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
