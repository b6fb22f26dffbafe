"""Worker pools: results come back as they finish, so progress bars move with one worker too."""

from vismanip.evaluation.workers import as_finished, worker_pool


def test_results_arrive_before_every_call_has_run():
    ran = []

    def call(index):
        ran.append(index)
        return index

    with worker_pool(1, lambda: None, (), lambda: None) as pool:
        results = as_finished(pool, ((call, i) for i in range(10)), in_flight=2)
        first = next(results)
        assert ran == [0, 1]  # the other 8 wait: a progress bar can show the first result
        assert sorted([first, *results]) == list(range(10))
