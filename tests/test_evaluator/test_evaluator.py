import pickle

import pytest
import torch

from kiln.evaluator import BaseMetric, DumpResults, Evaluator
from kiln.registry import METRICS
from kiln.structures import BaseDataElement, InstanceData


@METRICS.register_module(name='_KilnTestAccuracy', force=True)
class Accuracy(BaseMetric):
    default_prefix = 'acc'

    def process(self, data_batch, data_samples):
        for s in data_samples:
            self.results.append(dict(correct=int((s['pred'] == s['gt']).item()), img_id=s['img_id']))

    def compute_metrics(self, results):
        return dict(top1=sum(r['correct'] for r in results) / len(results), n=len(results),
                    ids=[r['img_id'] for r in results])


def samples(preds, gts):
    return [BaseDataElement(metainfo=dict(img_id=i), pred=torch.tensor(p), gt=torch.tensor(g))
            for i, (p, g) in enumerate(zip(preds, gts))]


def test_metric_prefix_and_clearing():
    ev = Evaluator(dict(type='_KilnTestAccuracy'))
    ev.process(samples([1, 2], [1, 0]))
    ev.process(samples([3], [3]))
    res = ev.evaluate(3)
    assert res == {'acc/top1': pytest.approx(2 / 3), 'acc/n': 3, 'acc/ids': [0, 1, 0]}
    assert ev.metrics[0].results == []
    custom = Accuracy(prefix='val')
    custom.process(None, [dict(pred=torch.tensor(1), gt=torch.tensor(1), img_id=5)])
    assert custom.evaluate(1) == {'val/top1': 1.0, 'val/n': 1, 'val/ids': [5]}


def test_size_truncates_padding():
    m = Accuracy()
    m.process(None, [dict(pred=torch.tensor(1), gt=torch.tensor(i), img_id=i) for i in range(4)])
    assert m.evaluate(2)['acc/n'] == 2


def test_process_converts_data_elements_to_dicts():
    seen = []

    class Spy(BaseMetric):
        def process(self, data_batch, data_samples):
            seen.extend(data_samples)

        def compute_metrics(self, results):
            return {}

    s = BaseDataElement(metainfo=dict(img_id=3), pred_instances=InstanceData(scores=torch.tensor([0.5])))
    Evaluator(Spy()).process([s], data_batch=dict(inputs=[1]))
    assert isinstance(seen[0], dict) and seen[0]['img_id'] == 3
    assert isinstance(seen[0]['pred_instances'], dict)
    torch.testing.assert_close(seen[0]['pred_instances']['scores'], torch.tensor([0.5]))


def test_dataset_meta_propagates():
    ev = Evaluator([Accuracy(), Accuracy(prefix='other')])
    meta = dict(classes=('RBC', 'WBC', 'Platelets'))
    ev.dataset_meta = meta
    assert all(m.dataset_meta == meta for m in ev.metrics)
    meta['classes'] = ()
    assert ev.metrics[0].dataset_meta['classes'] == ('RBC', 'WBC', 'Platelets')


def test_duplicate_keys_and_empty_results():
    ev = Evaluator([Accuracy(), Accuracy()])
    ev.process(samples([1], [1]))
    with pytest.raises(ValueError, match="several metrics produce 'acc/top1'"):
        ev.evaluate(1)

    class Empty(BaseMetric):
        def process(self, data_batch, data_samples):
            pass

        def compute_metrics(self, results):
            return dict(n=len(results))

    with pytest.warns(UserWarning, match='self.results is empty'):
        assert Empty().evaluate(0) == {'n': 0}
    with pytest.raises(TypeError, match=r'metrics\[1\]'):
        Evaluator([Accuracy(), 3])


def test_offline_evaluate_in_chunks():
    batches = []

    class Spy(Accuracy):
        def process(self, data_batch, data_samples):
            batches.append(data_batch)
            super().process(data_batch, data_samples)

    ev = Evaluator(Spy())
    data = [dict(inputs=torch.zeros(1)) for _ in range(5)]
    res = ev.offline_evaluate(samples([1, 1, 0, 0, 1], [1, 0, 0, 1, 1]), data, chunk_size=2)
    assert res['acc/top1'] == pytest.approx(3 / 5) and res['acc/n'] == 5
    assert [len(b['inputs']) for b in batches] == [2, 2, 1]
    with pytest.raises(ValueError, match='5 data_samples but 2'):
        ev.offline_evaluate(samples([1] * 5, [1] * 5), data[:2])


def test_dump_results(tmp_path):
    out = tmp_path / 'sub' / 'preds.pkl'
    ev = Evaluator(dict(type='DumpResults', out_file_path=str(out)))
    ev.process(samples([1, 2], [0, 0]))
    assert ev.evaluate(2) == {}
    with open(out, 'rb') as f:
        dumped = pickle.load(f)
    assert [d['img_id'] for d in dumped] == [0, 1] and torch.equal(dumped[1]['pred'], torch.tensor(2))
    with pytest.raises(ValueError, match='.pkl'):
        DumpResults(out_file_path='x.json')


def test_logger_propagates_to_every_metric():
    import logging
    logger = logging.Logger('evaluator-test')
    evaluator = Evaluator([Accuracy(), Accuracy(prefix='other')])
    assert evaluator.logger is None and all(m.logger is None for m in evaluator.metrics)
    evaluator.logger = logger
    assert all(m.logger is logger for m in evaluator.metrics)
