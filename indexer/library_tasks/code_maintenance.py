"""The library-wide task that keeps search's binary codes current after a batch: fit,
refit or update (indexer.search.code_index.maintain). The query path never writes."""
from __future__ import annotations

from indexer.stages.base import WHEN_DONE, Emit


class CodeMaintenance:
    name = "codes"
    when = WHEN_DONE

    def run(self, store, emit: Emit) -> int:
        from indexer.search.code_index import maintain
        try:
            report = maintain(store)
        except Exception as exc:  # noqa: BLE001  (a failure costs speed, not results)
            report = [{"error": f"{type(exc).__name__}: {exc}"}]
        emit({"type": "codes_maintained", "report": report})
        return 0

    def cancel(self) -> None:
        pass                  # short, and each space's step is one transaction
