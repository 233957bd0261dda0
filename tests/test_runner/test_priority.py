import pytest

from kiln.runner import Priority, get_priority


def test_levels_match_mmengine():
    assert [(p.name, p.value) for p in Priority] == [
        ('HIGHEST', 0), ('VERY_HIGH', 10), ('HIGH', 30), ('ABOVE_NORMAL', 40), ('NORMAL', 50),
        ('BELOW_NORMAL', 60), ('LOW', 70), ('VERY_LOW', 90), ('LOWEST', 100)]


@pytest.mark.parametrize('value, expected', [('NORMAL', 50), ('very_low', 90), (Priority.HIGH, 30), (0, 0),
                                             (100, 100), (42, 42)])
def test_get_priority(value, expected):
    assert get_priority(value) == expected


def test_get_priority_errors():
    with pytest.raises(ValueError, match='0..100'):
        get_priority(101)
    with pytest.raises(KeyError, match='NORMAL'):
        get_priority('MEDIUM')
    with pytest.raises(TypeError):
        get_priority(1.5)
    with pytest.raises(TypeError):
        get_priority(True)
