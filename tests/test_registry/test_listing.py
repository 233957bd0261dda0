import pytest

from kiln.registry import listing
from kiln.registry import Registry


@pytest.fixture
def roots(monkeypatch):
    models = Registry('model', scope='t_list')
    hooks = Registry('hook', scope='t_list_h', locations=['t_listing_missing_xyz'])

    @models.register_module()
    class ResNet:
        pass

    @models.register_module(name='FPN')
    class Neck:
        pass

    monkeypatch.setattr(listing, 'ROOT_REGISTRIES', {'MODELS': models, 'HOOKS': hooks})
    return models, hooks


def test_overview_lists_every_registry_and_reports_import_errors(roots):
    text = listing.format_registries()
    lines = text.splitlines()
    assert lines[0] == "MODELS ('model'): 2 registered"
    assert lines[1] == '    FPN, ResNet'
    assert lines[2] == "HOOKS ('hook'): 0 registered"
    assert "could not import its location 't_listing_missing_xyz'" in lines[3]


def test_single_registry_table(roots):
    for name in ('MODELS', 'models', 'model'):
        lines = listing.format_registries(name).splitlines()
        assert lines[0] == ("MODELS (registry 'model', scope 't_list', locations: none): "
                            '2 registered')
        assert lines[1].split() == ['FPN', f'{__name__}.roots.<locals>.Neck']
        assert lines[2].split() == ['ResNet', f'{__name__}.roots.<locals>.ResNet']


def test_unknown_registry_lists_known_ones(roots):
    with pytest.raises(KeyError, match="unknown registry 'nope'; known registries: MODELS, HOOKS"):
        listing.format_registries('nope')
