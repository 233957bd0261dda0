# The environment variable is substituted before parsing, so `dataset.ann_file` follows it too.
dataset_type = 'CocoDataset'
data_root = '{{$KILN_TUTORIAL_DATASET:/data/coco/}}'
dataset = dict(ann_file=data_root + 'train.json')
