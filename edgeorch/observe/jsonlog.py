"""Log records as JSON lines (``[daemon] log_format = "json"``), for log shippers that read stderr.

One strict JSON object per line: ``ts`` (ISO 8601, UTC, milliseconds),
``level`` (debug, info, warning, error, critical), ``logger``, ``message``,
then the record's structured fields under their JSON keys (:mod:`.logfields`:
``run_id``, ``task``, ``attempt``, ``pipeline``, ``input_id``), then
``exception`` (the traceback) when there is one. Pure formatting.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from .logfields import json_fields


class JsonFormatter(logging.Formatter):
    """See the module docstring."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update(json_fields(record))
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        return json.dumps(doc, ensure_ascii=False, default=str, allow_nan=False)
