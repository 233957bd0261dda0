"""``BaseDataset.subset``: indices refer to the full, unfiltered ``load_data_list`` order."""
import pytest

from test_dataset.test_base_dataset import make


def test_subset_indices_refer_to_the_full_unfiltered_list():
    full = make()
    ids = [d['img_id'] for d in full.full_data_list]
    assert len(ids) == len(full) > 10 and full.full_indices == list(range(len(full)))

    sub = full.subset([5, 2, 7])
    assert [sub.get_data_info(i)['img_id'] for i in range(3)] == [ids[5], ids[2], ids[7]]
    assert sub.full_indices == [5, 2, 7] and len(full) == len(ids)  # the parent is untouched
    # a subset of a subset still indexes the full list, not the subset
    assert [d['img_id'] for d in sub.subset([0, 9]).data_list] == [ids[0], ids[9]]


def test_subset_of_a_filtered_dataset_and_full_indices():
    filtered = make(filter_cfg=dict(require_class='WBC'))
    ids = [d['img_id'] for d in filtered.full_data_list]
    assert len(filtered.full_data_list) > len(filtered)  # some images have no WBC
    kept = filtered.full_indices
    assert [ids[k] for k in kept] == [filtered.get_data_info(i)['img_id'] for i in range(len(filtered))]
    no_wbc = next(i for i in range(len(ids)) if i not in kept)
    sub = filtered.subset([kept[0], no_wbc, kept[1]])  # the filter applies to subsets too
    assert sub.full_indices == [kept[0], kept[1]]
    # MMEngine's get_subset keeps its meaning: positions among the current (filtered) records
    assert filtered.get_subset([1]).full_indices == [kept[1]]


def test_subset_serialized_and_errors():
    ds = make(serialize_data=True)
    ids = [d['img_id'] for d in ds.full_data_list]
    sub = ds.subset([3, 1])
    assert sub.data_bytes is not None and [sub[i]['img_id'] for i in range(2)] == [ids[3], ids[1]]
    with pytest.raises(IndexError, match=r'indices\[1\] = 999 is out of range'):
        ds.subset([0, 999])
    with pytest.raises(TypeError, match='sequence of ints'):
        ds.subset(3)
