"""Concurrent optimal assignment: the same solutions as lone scipy calls (checked by brute force
on small matrices), in order, with the pool path forced; one-transfer CPU copies; the pool in a
forked child; the worker count per process."""

import itertools
import multiprocessing

import pytest
import torch
from scipy.optimize import linear_sum_assignment

from detr_efficient.modeling import assignment
from detr_efficient.modeling.assignment import (
    assign,
    assign_all,
    assignment_workers,
    to_cpu_together,
)


@pytest.fixture
def four_workers(monkeypatch):
    """Force the thread-pool path whatever the machine's core count."""
    monkeypatch.setattr(assignment, "assignment_workers", lambda: 4)


def _brute_force_minimum(cost: torch.Tensor) -> float:
    rows, cols = cost.shape
    if rows > cols:
        return _brute_force_minimum(cost.T)
    return min(
        sum(float(cost[r, c]) for r, c in enumerate(chosen))
        for chosen in itertools.permutations(range(cols), rows)
    )


def test_assign_is_optimal_by_brute_force_and_sorted_by_row():
    g = torch.Generator().manual_seed(0)
    for shape in [(4, 4), (3, 5), (5, 3), (1, 6)]:
        cost = torch.rand(*shape, generator=g, dtype=torch.float64)
        rows, cols = assign(cost)
        assert rows.dtype == cols.dtype == torch.int64
        assert len(rows) == min(shape) and len(set(cols.tolist())) == min(shape)
        assert torch.equal(rows, rows.sort().values)
        total = float(cost[rows, cols].sum())
        assert total == pytest.approx(_brute_force_minimum(cost), abs=1e-12)


def test_assign_all_gives_each_matrix_its_lone_solution_in_order(four_workers):
    g = torch.Generator().manual_seed(1)
    shapes = [(300, 300), (0, 5), (5, 0), (40, 7), (7, 40), (128, 128)] * 3
    costs = [torch.rand(*shape, generator=g) for shape in shapes]
    costs[3] = costs[3].round(decimals=1)  # many exact ties
    solutions = assign_all(costs)
    assert len(solutions) == len(costs)
    for cost, (rows, cols) in zip(costs, solutions, strict=True):
        expected_rows, expected_cols = linear_sum_assignment(cost.numpy())
        order = expected_rows.argsort()
        assert rows.tolist() == expected_rows[order].tolist()
        assert cols.tolist() == expected_cols[order].tolist()


def test_assign_all_uses_the_pool_and_reuses_it(four_workers):
    costs = [torch.rand(20, 20) for _ in range(6)]
    assign_all(costs)
    pool = assignment._pool
    assert pool is not None and assignment._pool_workers >= 4
    assign_all(costs)
    assert assignment._pool is pool


def _solve_in_child(queue):
    assignment.assignment_workers = lambda: 4
    rows, cols = assign_all([torch.eye(3), 1 - torch.eye(3)])[0]
    queue.put((rows.tolist(), cols.tolist()))


def test_a_forked_child_gets_its_own_pool(four_workers):
    assign_all([torch.rand(5, 5) for _ in range(4)])  # the parent's pool has threads
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_solve_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("assign_all hung in a forked child")
    assert child.exitcode == 0
    rows, cols = queue.get(timeout=5)
    # eye(3) costs 1 on the diagonal only: the optimum moves every row off it
    assert rows == [0, 1, 2] and all(r != c for r, c in zip(rows, cols, strict=True))


def test_assign_rejects_a_bad_cost():
    with pytest.raises(ValueError, match="2-D CPU tensor"):
        assign(torch.rand(2, 3, 4))


def test_to_cpu_together_keeps_shapes_and_values():
    tensors = [torch.rand(3, 4), torch.zeros(0, 7), torch.arange(5.0), torch.rand(2, 2).double()]
    copies = to_cpu_together(tensors)
    assert [c.shape for c in copies] == [t.shape for t in tensors]
    assert all(c.dtype == torch.float32 for c in copies)
    for copy, original in zip(copies, tensors, strict=True):
        torch.testing.assert_close(copy, original.float())
    assert to_cpu_together([]) == []


def test_workers_are_shared_among_the_processes_of_a_machine(monkeypatch):
    monkeypatch.setattr(assignment.os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert assignment_workers() == 16
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert assignment_workers() == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")
    assert assignment_workers() == 1
