"""Errors of nested builds name the config key path (model.bbox_head.loss_cls)."""
import copy

import pytest

from kiln.config import Config, ConfigDict
from kiln.registry import Registry
from kiln.registry.build_context import current_build, locate


@pytest.fixture
def models():
    reg = Registry('model', scope='t_key_path')

    @reg.register_module()
    class FocalLoss:
        def __init__(self, gamma=2.0, alpha=0.25, loss_weight=1.0):
            self.gamma = gamma

    @reg.register_module()
    class Head:
        """Builds its losses from sub-dicts, as MMDetection heads do (one of them copied)."""

        def __init__(self, num_classes, loss_cls, loss_bbox=None, extra_losses=(), made=None):
            self.loss_cls = reg.build(loss_cls)
            self.loss_bbox = reg.build(copy.deepcopy(loss_bbox)) if loss_bbox else None
            self.extra = [reg.build(dict(c)) for c in extra_losses]
            self.made = reg.build(dict(type='FocalLoss', **made)) if made else None

    @reg.register_module()
    class Detector:
        def __init__(self, backbone, bbox_head, train_cfg=None):
            self.backbone = reg.build(backbone)
            self.bbox_head = reg.build(bbox_head)
            self.assigner = reg.build(train_cfg['assigner']) if train_cfg else None

    @reg.register_module()
    class Backbone:
        def __init__(self, depth):
            if depth not in (18, 50):
                raise ValueError(f'invalid depth {depth}')

    return reg


def model_cfg(**head):
    head = dict(dict(type='Head', num_classes=3, loss_cls=dict(type='FocalLoss')), **head)
    return dict(type='Detector', backbone=dict(type='Backbone', depth=50), bbox_head=head)


def message_of(info):
    return str(info.value.args[0]) if isinstance(info.value, KeyError) else str(info.value)


def test_bad_argument_of_a_nested_loss_names_its_key_path(models):
    cfg = Config(dict(model=model_cfg(loss_cls=dict(type='FocalLoss', gama=2.0))))
    with pytest.raises(TypeError) as info:
        models.build(cfg.model)
    assert message_of(info) == (
        "model.bbox_head.loss_cls: cannot build 'FocalLoss' "
        f"({models.get('FocalLoss').__module__}.{models.get('FocalLoss').__qualname__}) from the "
        "'model' registry: unexpected argument 'gama' (did you mean 'gamma'?). "
        'Accepted parameters: gamma, alpha, loss_weight')
    assert info.value.__notes__ == [
        "(while building 'Head' at model.bbox_head from the 'model' registry)",
        "(while building 'Detector' at model from the 'model' registry)"]
    assert current_build() is None  # the context is restored after the error


def test_unknown_type_and_constructor_errors_name_the_path(models):
    cfg = Config(dict(model=model_cfg(loss_bbox=dict(type='FocalLos'))))
    with pytest.raises(KeyError) as info:
        models.build(cfg['model'])  # deep-copied inside Head: found as an equal argument
    assert message_of(info).startswith(
        "model.bbox_head.loss_bbox: 'FocalLos' is not registered in the 'model' registry")
    assert "Did you mean: 'FocalLoss'?" in message_of(info)
    cfg = Config(dict(model=dict(model_cfg(), backbone=dict(type='Backbone', depth=7))))
    with pytest.raises(ValueError, match='invalid depth 7') as info:
        models.build(cfg.model)
    assert info.value.__notes__[0] == \
        "(while building 'Backbone' at model.backbone from the 'model' registry)"


def test_paths_through_lists_and_nested_dicts(models):
    cfg = Config(dict(model=dict(
        model_cfg(extra_losses=[dict(type='FocalLoss'), dict(type='FocalLoss', bad=1)]),
        train_cfg=dict(assigner=dict(type='Nope')))))
    with pytest.raises(TypeError, match=r"^model\.bbox_head\.extra_losses\.1: cannot build "
                                        r"'FocalLoss'.*unexpected argument 'bad'"):
        models.build(cfg.model)
    cfg.model.bbox_head.extra_losses.pop()
    with pytest.raises(KeyError) as info:
        models.build(cfg.model)
    assert message_of(info).startswith("model.train_cfg.assigner: 'Nope' is not registered")


def test_config_made_inside_a_constructor_gets_the_closest_path(models):
    # Head builds dict(type='FocalLoss', **made): it extends its `made` argument (every item of
    # `made` is in it as the same object), so it is located at that argument (as the
    # `dict(rpn_head, train_cfg=...)` of two-stage detectors is at model.rpn_head)
    cfg = Config(dict(model=model_cfg(made=dict(gamma=1.0, wrong=2))))
    with pytest.raises(TypeError) as info:
        models.build(cfg.model)
    assert message_of(info).startswith("model.bbox_head.made: cannot build 'FocalLoss'")


def test_plain_dicts_get_paths_relative_to_the_outer_build(models):
    with pytest.raises(TypeError, match=r"^bbox_head\.loss_cls: cannot build 'FocalLoss'"):
        models.build(model_cfg(loss_cls=dict(type='FocalLoss', gama=1)))
    with pytest.raises(TypeError, match=r"^cannot build 'FocalLoss'"):
        models.build(dict(type='FocalLoss', gama=1))  # top level: nothing to name


def test_config_dict_read_from_a_config_keeps_its_path_outside_builds(models):
    cfg = Config(dict(model=model_cfg(loss_cls=dict(type='FocalLoss', gama=1))))
    loss_cfg = cfg.model.bbox_head.loss_cls
    with pytest.raises(TypeError, match=r'^model\.bbox_head\.loss_cls: '):
        models.build(loss_cfg)
    assert locate(loss_cfg).path == 'model.bbox_head.loss_cls'
    assert locate(ConfigDict(type='X')).path == ''


def test_successful_nested_build_is_unchanged(models):
    det = models.build(Config(dict(model=model_cfg(loss_bbox=dict(type='FocalLoss', gamma=3.0)))).model)
    assert det.bbox_head.loss_bbox.gamma == 3.0 and current_build() is None


def test_plain_copy_of_a_top_level_dict_is_located_through_config_root(models):
    # a runner building `dict(cfg.model)` (a plain shallow copy: no key path of its own)
    from kiln.registry import NotRegisteredError
    from kiln.registry.build_context import config_root
    cfg = Config(dict(model=model_cfg(loss_cls=dict(type='FocalLos'))))
    with pytest.raises(NotRegisteredError) as info:
        models.build(dict(cfg.model))
    assert message_of(info).startswith("bbox_head.loss_cls: 'FocalLos'")  # root key unknown
    with config_root(cfg), pytest.raises(NotRegisteredError) as info:
        models.build(dict(cfg.model))
    assert message_of(info).startswith("model.bbox_head.loss_cls: 'FocalLos' is not registered")
    assert isinstance(info.value, KeyError)  # MMEngine raises KeyError: still one


def test_check_config_types_finds_misspelt_types_without_building():
    from kiln.registry import NotRegisteredError, check_config_types
    import kiln.det  # noqa: F401  (registers the detection classes, as default_scope does)
    cfg = Config.fromfile(str(__import__('pathlib').Path(__file__).parents[2] / 'configs' / 'fcos' /
                              'fcos_r18-slim_fpn_bccd.py'))
    check_config_types(cfg)  # the shipped config is fine
    for key, bad in [('model.bbox_head.loss_cls.type', 'FocalLos'),
                     ('train_dataloader.dataset.pipeline.1.type', 'LoadAnnotation'),
                     ('default_hooks.checkpoint.type', 'CheckpointHok'),
                     ('optim_wrapper.optimizer.type', 'SDG')]:
        broken = copy.deepcopy(cfg)
        broken.merge_from_dict({key: bad})
        with pytest.raises(NotRegisteredError) as info:
            check_config_types(broken)
        assert message_of(info).startswith(f"{key.rpartition('.')[0]}: {bad!r} is not registered")
    # names left to the build: dotted import paths, classes, _scope_
    ok = copy.deepcopy(cfg)
    ok.merge_from_dict({'optim_wrapper.optimizer.type': 'torch.optim.SGD',
                        'model.bbox_head.loss_cls': dict(_scope_='elsewhere', type='Unknown')})
    check_config_types(ok)
