#!/usr/bin/env python
"""Benchmark DETRDistill's logits-distillation matching, the CPU-bound step of its training.

Every decoder stage pairs each teacher prediction with one student prediction, a dense
Hungarian problem per image and stage (900 × 900 for DINO). Side by side in one run: ours
(every stage's costs in one transfer, solved concurrently: ``match_stages``), ours on one
thread, and one problem after another (a transfer and a solve per image and stage, as the
official code does). All three must give the same pairs. Rows "solve" time the solving
alone (the costs already on the CPU): all problems concurrently against one after another.
Prints a table and writes JSON.

    python tools/benchmark_matching.py --device cpu --output results/benchmarks
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from unittest import mock

import torch
from benchmark_kernels import environment, print_table, timed_variants, write_rows
from scipy.optimize import linear_sum_assignment

from detr_efficient.modeling import assignment
from detr_efficient.modeling.detr_distill import distillation_cost, match_stages

WEIGHTS = (1.0, 5.0, 2.0)


def stage_predictions(batch, queries, classes, trained, device, generator):
    """One stage's (student logits, student boxes, teacher scores, teacher boxes). An untrained
    student predicts boxes anywhere; a trained one is near a shuffled copy of the teacher."""

    def boxes():
        centre = torch.rand(batch, queries, 2, generator=generator)
        size = torch.rand(batch, queries, 2, generator=generator) * 0.3 + 0.02
        return torch.cat([centre, size], -1)

    teacher_boxes = boxes()
    if trained:
        shuffled = teacher_boxes[:, torch.randperm(queries, generator=generator)]
        noise = 0.02 * torch.randn(batch, queries, 4, generator=generator)
        student_boxes = (shuffled + noise).abs()
    else:
        student_boxes = boxes()
    logits = torch.randn(batch, queries, classes, generator=generator) - 4
    scores = (torch.randn(batch, queries, classes, generator=generator) - 4).sigmoid()
    return tuple(t.to(device) for t in (logits, student_boxes, scores, teacher_boxes))


def one_by_one(stages):
    """A transfer and a scipy solve per image and stage, one after another → pairs per stage."""
    result = []
    for logits, boxes, scores, teacher_boxes in stages:
        pairs = []
        for i in range(logits.shape[0]):
            cost = distillation_cost(logits[i], boxes[i], scores[i], teacher_boxes[i], WEIGHTS)
            teacher_idx, student_idx = linear_sum_assignment(cost.cpu().numpy())
            pairs.append((torch.as_tensor(student_idx), torch.as_tensor(teacher_idx)))
        result.append(pairs)
    return result


def ours(stages):
    none = [None] * len(stages)
    return match_stages(stages, WEIGHTS, none, none)


def ours_one_thread(stages):
    with mock.patch.object(assignment, "assignment_workers", lambda: 1):
        return ours(stages)


def same_pairs(a, b) -> bool:
    """The same (student, teacher) pairs per image and stage, in any order."""
    for stage_a, stage_b in zip(a, b, strict=True):
        for (sa, ta), (sb, tb) in zip(stage_a, stage_b, strict=True):
            pairs_a = set(zip(sa.tolist(), ta.tolist(), strict=True))
            if pairs_a != set(zip(sb.tolist(), tb.tolist(), strict=True)):
                return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", type=Path, default=Path("results/benchmarks"))
    parser.add_argument("--queries", type=int, nargs="+", default=[300, 900])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--stages", type=int, default=6)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for queries in args.queries:
        for trained in (False, True):
            stages = [
                stage_predictions(args.batch, queries, args.classes, trained, device, generator)
                for _ in range(args.stages)
            ]
            reference = one_by_one(stages)
            for variant in (ours, ours_one_thread):
                if not same_pairs(variant(stages), reference):
                    raise SystemExit(f"{variant.__name__} paired differently at Q={queries}")
            shape = (
                f"B={args.batch} L={args.stages} Q={queries} "
                f"{'trained' if trained else 'untrained'}"
            )
            variants = {
                "ours": lambda s=stages: ours(s),
                "ours, one thread": lambda s=stages: ours_one_thread(s),
                "one by one": lambda s=stages: one_by_one(s),
            }
            rows += timed_variants("match", shape, variants, device, args.repeats, args.warmup)
            costs = [
                distillation_cost(*(t[i] for t in stage), WEIGHTS).cpu()
                for stage in stages
                for i in range(args.batch)
            ]
            solves = {
                "ours": lambda c=costs: assignment.assign_all(c),
                "one by one": lambda c=costs: [assignment.assign(cost) for cost in c],
            }
            rows += timed_variants("solve", shape, solves, device, args.repeats, args.warmup)
    print_table(rows)
    info = environment(device) | {"assignment_workers": assignment.assignment_workers()}
    write_rows(args.output / f"matching_{device.type}.json", info, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
