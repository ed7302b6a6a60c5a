"""Fetch and check the official vocabulary files, e.g. before going offline.

Usage::

    python -m mmfcclip.vocabularies [NAME ...] [--cache-dir DIR]
        [--vocab-dir DIR] [--no-download]

Prints, per vocabulary, the verified file and its class, synonym and prompt
counts.
"""
import argparse
from typing import List, Optional

from .official import (OFFICIAL_VOCABULARIES, load_official_vocabulary,
                       official_cache_dir)
from ..models.utils.vocabulary import VILD_TEMPLATES, split_synonyms


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point.

    Args:
        argv (list[str], optional): Arguments; ``sys.argv[1:]`` by default.

    Returns:
        int: The exit status.
    """
    parser = argparse.ArgumentParser(
        prog='python -m mmfcclip.vocabularies',
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('names',
                        nargs='*',
                        help='vocabularies (default: all): ' +
                        ', '.join(OFFICIAL_VOCABULARIES))
    parser.add_argument('--cache-dir', help='cache root')
    parser.add_argument('--vocab-dir',
                        help='directory holding the files (checked first)')
    parser.add_argument('--no-download',
                        action='store_true',
                        help='never download')
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(OFFICIAL_VOCABULARIES))
    if unknown:
        parser.error(f'unknown vocabularies: {unknown}')
    print(f'cache: {official_cache_dir(args.cache_dir)}')
    for name in args.names or OFFICIAL_VOCABULARIES:
        vocab = load_official_vocabulary(name,
                                         args.cache_dir,
                                         not args.no_download,
                                         vocab_dir=args.vocab_dir,
                                         with_prompt_names=False)
        synonyms = sum(len(split_synonyms(c)) for c in vocab['classes'])
        print(f'{name:20s} classes {len(vocab["classes"]):5d} '
              f'(things {len(vocab["thing_classes"]):4d}) '
              f'synonyms {synonyms:5d} '
              f'prompts {synonyms * len(VILD_TEMPLATES):6d}  {vocab["path"]}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
