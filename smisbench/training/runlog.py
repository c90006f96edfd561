"""Loss logs: a CSV file (always) and TensorBoard (when the package is installed and asked for).

Rows are appended as training goes (a crash can cut only the last line); on resume the CSV is
rewritten atomically with the rows up to the checkpoint's step, so the file always describes
one uninterrupted run.
"""

from __future__ import annotations

import csv
from pathlib import Path

from smisbench.io import atomic_write_text


class LossLog:
    """Append-only CSV of step, epoch, learning rates, seconds per step and loss terms."""

    def __init__(self, path: Path, resume_step: int | None = None, tensorboard_dir: Path | None = None):
        self.path = path
        self.fields: list[str] | None = None
        self.rows: list[dict[str, str]] = []
        if resume_step is not None and path.is_file():
            with open(path, newline="") as handle:
                reader = csv.DictReader(handle)
                self.fields = list(reader.fieldnames or [])
                self.rows = [row for row in reader if _step(row) is not None and _step(row) <= resume_step]
            self._rewrite()
        elif path.exists():
            path.unlink()
        self.tensorboard = None
        self.tensorboard_note = "not requested"
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.tensorboard_note = "tensorboard is not installed (pip install tensorboard); CSV only"
            else:
                self.tensorboard = SummaryWriter(str(tensorboard_dir), purge_step=resume_step)
                self.tensorboard_note = f"written to {tensorboard_dir}"

    def _rewrite(self) -> None:
        if self.fields is None:
            return
        lines = [",".join(self.fields)]
        for row in self.rows:
            lines.append(",".join(str(row.get(k, "")) for k in self.fields))
        atomic_write_text(self.path, "\n".join(lines) + "\n")

    def write(self, values: dict[str, float | int]) -> None:
        row = {k: (f"{v:.6g}" if isinstance(v, float) else str(v)) for k, v in values.items()}
        if self.fields is None or set(row) - set(self.fields):
            self.fields = list(dict.fromkeys((self.fields or []) + list(row)))
            self.rows.append(row)
            self._rewrite()
        else:
            self.rows.append(row)
            with open(self.path, "a", newline="") as handle:
                csv.DictWriter(handle, fieldnames=self.fields).writerow(row)
        if self.tensorboard is not None:
            step = int(values["step"])
            for key, value in values.items():
                if key not in ("step", "epoch"):
                    self.tensorboard.add_scalar(key, float(value), step)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def _step(row: dict[str, str]) -> int | None:
    """The row's step, or None for a line cut short by a crash during an append."""
    try:
        return int(row.get("step") or "")
    except ValueError:
        return None

