# A pure-Python config (it imports a non-standard-library module) keeps the functions it defines
# as values, as MMEngine's lazy-import reader does; imported names are not values.
import argparse

import yaml


def parse_args():
    return argparse.ArgumentParser().parse_args()


categories = [dict(id=1, name='rbc')]
