# MMEngine cannot parse this file (it substitutes the text of the value); kiln turns the reference
# into `_base_.model`, a copy that can be modified.
_base_ = ['resnet50.py']
a = {{_base_.model}}
a['type'] = 'MobileNet'
