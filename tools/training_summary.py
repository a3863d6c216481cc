#!/usr/bin/env python
"""Summarise a training run of train_net.py from its output folder: the loss at the start and
at the end, seconds per iteration, peak memory and the last evaluation; exit status 1 where
a check given on the command line fails (a non-finite loss always fails).

    python tools/training_summary.py output/dino_coco128 [--window 50] \
        [--max-loss-ratio 0.7] [--min-ap50 50] [--json summary.json]

Reads ``metrics.json`` (Detectron2's JSONWriter: one JSON object per line) and, for the peak
memory, ``log.txt`` (Detectron2's ``max_mem: ...M`` lines; absent on the CPU).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from json_output import write_json  # noqa: E402

MAX_MEM = re.compile(r"max_mem: (\d+)M")


def read_metrics(folder: Path) -> tuple[list[dict], list[dict]]:
    """(training entries, evaluation entries) of ``folder/metrics.json``, in file order. A
    later run resumed in the same folder replaces the entries of the iterations it repeats."""
    path = folder / "metrics.json"
    if not path.is_file():
        raise SystemExit(f"training_summary.py: {path} does not exist")
    training, evaluation = {}, []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            raise SystemExit(f"training_summary.py: {path}, line {number}: {e}") from None
        if "iteration" not in entry:
            raise SystemExit(f"training_summary.py: {path}, line {number}: no 'iteration'")
        if any(key.startswith("bbox/") for key in entry):
            evaluation.append(entry)
        if "total_loss" in entry:
            training[entry["iteration"]] = entry
    return [training[i] for i in sorted(training)], evaluation


def peak_memory_mib(folder: Path) -> int | None:
    """The largest ``max_mem`` Detectron2 logged to ``folder/log.txt`` (MiB), if any."""
    log = folder / "log.txt"
    found = [int(m) for m in MAX_MEM.findall(log.read_text())] if log.is_file() else []
    return max(found) if found else None


def summarise(training: list[dict], evaluation: list[dict], window: int) -> dict:
    """Mean total loss over the first and the last ``window`` logged entries, their ratio,
    the median seconds per iteration of the last window, and the last evaluation's overall
    metrics (AP, AP50, AP75, APs, APm, APl; not the per-class ``AP-<class>``)."""
    if not training:
        raise SystemExit("training_summary.py: metrics.json has no training entries")
    losses = [entry["total_loss"] for entry in training]
    first, last = losses[:window], losses[-window:]
    times = [entry["time"] for entry in training[-window:] if "time" in entry]
    summary = {
        "iterations": training[-1]["iteration"] + 1,
        "logged_entries": len(training),
        "loss_first": statistics.fmean(first),
        "loss_last": statistics.fmean(last),
        "non_finite_losses": sum(not math.isfinite(loss) for loss in losses),
        "seconds_per_iter": statistics.median(times) if times else None,
    }
    summary["loss_ratio"] = summary["loss_last"] / summary["loss_first"]
    if evaluation:
        last_eval = evaluation[-1]
        summary["evaluation_iteration"] = last_eval["iteration"]  # as metrics.json has it
        summary.update(
            {
                metric: value
                for key, value in last_eval.items()
                if key.startswith("bbox/") and "-" not in (metric := key.split("/", 1)[1])
            }
        )
    return summary


def failures(summary: dict, max_loss_ratio: float | None, min_ap50: float | None) -> list[str]:
    """The checks ``summary`` fails: non-finite losses always, the others where given."""
    found = []
    if summary["non_finite_losses"]:
        found.append(f"{summary['non_finite_losses']} logged total losses are not finite")
    if max_loss_ratio is not None and not summary["loss_ratio"] <= max_loss_ratio:
        found.append(f"loss ratio last/first {summary['loss_ratio']:.3f} > {max_loss_ratio}")
    if min_ap50 is not None:
        ap50 = summary.get("AP50")
        if ap50 is None:
            found.append("no evaluation was recorded, so AP50 cannot be checked")
        elif not ap50 >= min_ap50:
            found.append(f"AP50 {ap50:.1f} < {min_ap50}")
    return found


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="train.output_dir of the run")
    parser.add_argument("--window", type=int, default=50, help="logged entries averaged")
    parser.add_argument("--max-loss-ratio", type=float, help="fail above this last/first loss")
    parser.add_argument("--min-ap50", type=float, help="fail below this AP50 (last evaluation)")
    parser.add_argument("--json", type=Path, help="write the summary here")
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error("--window must be at least 1")

    summary = summarise(*read_metrics(args.output), window=args.window)
    summary["peak_memory_mib"] = peak_memory_mib(args.output)
    summary["failures"] = failures(summary, args.max_loss_ratio, args.min_ap50)
    width = max(map(len, summary))
    for key, value in summary.items():
        shown = f"{value:.4g}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")
    if args.json:
        write_json(args.json, summary)
    if summary["failures"]:
        sys.exit("training_summary.py: " + "; ".join(summary["failures"]))


if __name__ == "__main__":
    main()
