# Merging a dict of this file into an inherited dict builds a new dict (MMEngine's
# `_merge_a_into_b`): a variable that holds the inherited dict keeps its contents.
_base_ = ['base_detector.py']

original_head = _base_.model.bbox_head
model = dict(bbox_head=dict(num_classes=3))
optimizer_config = dict(_delete_=True, grad_clip=None)  # nothing to replace: key is kept
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4))
