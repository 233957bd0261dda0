# No imports at all: a plain file works as a base of a pure-Python config too.
default_scope = 'kiln'
log_level = 'INFO'
gpu_ids = [0, 1]
