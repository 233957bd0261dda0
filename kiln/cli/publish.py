"""``kiln publish CHECKPOINT OUT``: write a weights-only release file named with a short SHA-256."""
from __future__ import annotations

import argparse

from ._common import CLIError

__all__ = ['add_parser', 'run']


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``publish`` sub-command."""
    p = subparsers.add_parser(
        'publish', help='strip a checkpoint to its weights for release',
        description='Keep only the model weights and a short meta (versions, dataset_meta, epoch, config) of a '
                    'training checkpoint and write OUT with the first 8 hex digits of its SHA-256 in the name '
                    '(fcos.pth -> fcos-1a2b3c4d.pth). OUT ending in .safetensors (or --safetensors) writes '
                    'the safetensors format.')
    p.add_argument('checkpoint', help='training checkpoint (.pth), local path or fsspec URL')
    p.add_argument('out', help='output file name before the hash, e.g. fcos_bccd.pth or fcos_bccd.safetensors')
    p.add_argument('--safetensors', action='store_true', help='write safetensors whatever the extension')
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from kiln.checkpoint import CheckpointError, publish_checkpoint
    try:
        final = publish_checkpoint(args.checkpoint, args.out, True if args.safetensors else None)
    except (FileNotFoundError, IsADirectoryError, CheckpointError, KeyError) as e:
        raise CLIError(str(e).strip('"')) from None
    print(final)
    return 0
