from types import SimpleNamespace

from kiln.hooks import CheckpointHook, Hook, IterTimerHook, LoggerHook


def _runner(epoch=0, it=0, max_epochs=3, max_iters=30):
    return SimpleNamespace(epoch=epoch, iter=it, max_epochs=max_epochs, max_iters=max_iters)


def test_every_n_epochs_and_iters():
    hook = Hook()
    assert [e for e in range(6) if hook.every_n_epochs(_runner(epoch=e), 2)] == [1, 3, 5]  # epochs 2, 4, 6
    assert [e for e in range(6) if hook.every_n_epochs(_runner(epoch=e), 2, start=3)] == [2, 4]  # 3, 5
    assert not hook.every_n_epochs(_runner(epoch=3), 0)
    assert [i for i in range(10) if hook.every_n_train_iters(_runner(it=i), 4)] == [3, 7]
    assert [i for i in range(10) if hook.every_n_inner_iters(i, 3)] == [2, 5, 8]
    assert not hook.every_n_inner_iters(2, -1)


def test_end_and_last_helpers():
    hook = Hook()
    assert hook.end_of_epoch(range(5), 4) and not hook.end_of_epoch(range(5), 3)
    assert hook.is_last_train_epoch(_runner(epoch=2)) and not hook.is_last_train_epoch(_runner(epoch=1))
    assert hook.is_last_train_iter(_runner(it=29)) and not hook.is_last_train_iter(_runner(it=28))


def test_generic_mount_points_forward_with_mode():
    seen = []

    class Generic(Hook):
        def _before_epoch(self, runner, mode='train'):
            seen.append(('epoch', mode))

        def _after_iter(self, runner, batch_idx, data_batch=None, outputs=None, mode='train'):
            seen.append(('iter', mode, batch_idx, outputs))

    hook = Generic()
    hook.before_val_epoch(None)
    hook.after_test_iter(None, batch_idx=3, outputs='out')
    hook.after_train_iter(None, 1)
    assert seen == [('epoch', 'val'), ('iter', 'test', 3, 'out'), ('iter', 'train', 1, None)]
    assert 'before_train_epoch' in hook.get_triggered_stages() and 'after_val_iter' in hook.get_triggered_stages()
    assert 'before_run' not in hook.get_triggered_stages()


def test_defaults():
    assert Hook().priority == 'NORMAL' and Hook().state_dict() == {}
    assert Hook().get_triggered_stages() == []
    assert LoggerHook.priority == 'BELOW_NORMAL' and CheckpointHook.priority == 'VERY_LOW'
    assert IterTimerHook().get_triggered_stages()[:2] == ['before_train', 'before_train_epoch']


def test_stage_methods_keeps_only_hooks_that_override_the_mount_point():
    from kiln.hooks import Hook
    from kiln.hooks.hook import stage_methods

    class Direct(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            pass

    class Generic(Hook):
        def _after_iter(self, runner, batch_idx, data_batch=None, outputs=None, mode='train'):
            pass

    class Idle(Hook):
        def before_run(self, runner):
            pass

    class Duck:  # not a Hook: taken when it has the method
        def after_train_iter(self, runner, **kwargs):
            pass

    hooks = [Direct(), Idle(), Generic(), Duck()]
    methods = stage_methods(hooks, 'after_train_iter')
    assert [m.__self__ for m in methods] == [hooks[0], hooks[2], hooks[3]]
    assert stage_methods(hooks, 'before_train_iter') == []
    instance = Idle()
    instance.before_train_iter = lambda runner, **kw: None  # set on the instance
    assert stage_methods([instance], 'before_train_iter') == [instance.before_train_iter]


def test_runner_subclass_with_its_own_call_hook_sees_every_iteration(tmp_path):
    from kiln.runner import Runner
    from test_runner.toy import runner_kwargs

    class Tracing(Runner):
        def __init__(self, *args, **kwargs):
            self.seen = []
            super().__init__(*args, **kwargs)

        def call_hook(self, fn_name, **kwargs):
            self.seen.append(fn_name)
            super().call_hook(fn_name, **kwargs)

    runner = Tracing(**runner_kwargs(tmp_path, max_epochs=1, val=False, default_hooks=dict(checkpoint=None)))
    runner.train()
    assert runner.seen.count('before_train_iter') == runner.seen.count('after_train_iter') == 6


def test_stage_methods_leaves_out_hooks_idle_for_the_coming_iterations():
    from kiln.hooks import ParamSchedulerHook, StopFileHook
    from kiln.hooks.hook import stage_methods

    epoch_loop = SimpleNamespace(by_epoch=True)
    iter_loop = SimpleNamespace(by_epoch=False)
    runner = SimpleNamespace(train_loop=epoch_loop, param_schedulers=[SimpleNamespace(by_epoch=True)])
    by_epoch, by_iter = CheckpointHook(interval=1), CheckpointHook(interval=5, by_epoch=False)
    hooks = [by_epoch, by_iter, ParamSchedulerHook(), StopFileHook()]
    after = stage_methods(hooks, 'after_train_iter', runner)
    assert [m.__self__ for m in after] == [by_iter]  # epoch-based saving, no iteration scheduler, epoch loop
    assert [m.__self__ for m in stage_methods(hooks, 'before_train_iter', runner)] == [by_iter]
    by_epoch._pending = 3  # a rewrite after validation is pending: the next iteration must flush it
    assert [m.__self__ for m in stage_methods(hooks, 'before_train_iter', runner)] == [by_epoch, by_iter]
    runner = SimpleNamespace(train_loop=iter_loop, param_schedulers=[SimpleNamespace(by_epoch=False)])
    assert [m.__self__ for m in stage_methods(hooks, 'after_train_iter', runner)] == hooks[1:]
    # without a runner (or with a plain hook) nothing is left out
    assert len(stage_methods(hooks, 'after_train_iter')) == 4


def test_logger_hook_logs_the_last_batch_from_the_length_read_once_per_epoch():
    logged = []
    loop = SimpleNamespace(by_epoch=True, dataloader=list(range(23)))
    runner = SimpleNamespace(train_loop=loop, iter=0, logger=SimpleNamespace(info=logged.append),
                             log_processor=SimpleNamespace(get_log_after_iter=lambda r, i, m: ({}, f'line {i}')),
                             visualizer=SimpleNamespace(add_scalars=lambda tag, step: None))
    for hook, expected in ((LoggerHook(interval=10, ignore_last=False), ['line 9', 'line 19', 'line 22']),
                           (LoggerHook(interval=10), ['line 9', 'line 19'])):
        logged.clear()
        hook.before_train_epoch(runner)
        loop.dataloader = None  # the length is not asked again during the epoch
        for i in range(23):
            hook.after_train_iter(runner, batch_idx=i)
        hook.after_train_epoch(runner)
        loop.dataloader = list(range(23))
        assert logged == expected
