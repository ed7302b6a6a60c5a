"""Packaging for mmfcclip.

No torch import here: mmfcclip has no compiled extension, and importing torch
would make ``pip download``/``sdist`` fail on machines without it.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))
# What `mim train/test mmfcclip ...` looks for under ``mmfcclip/.mim``.
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def read_version() -> str:
    scope: dict = {}
    with open(osp.join(HERE, 'mmfcclip', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def add_mim_extension() -> None:
    """Expose configs and tools to mim under ``mmfcclip/.mim``.

    Development installs get symlinks (edits show up at once); wheels and
    sdists get copies. PEP 660 editable builds (``editable_wheel``) are
    treated like ``develop``, although openmim 0.3.9 only finds them when the
    install leaves an egg-link (legacy ``setup.py develop``, setuptools < 80).
    """
    if {'develop', 'editable_wheel'} & set(sys.argv):
        mode = 'copy' if os.name == 'nt' else 'symlink'
    elif {'sdist', 'bdist_wheel', 'build', 'install'} & set(sys.argv):
        mode = 'copy'
    else:
        return

    mim_root = osp.join(HERE, 'mmfcclip', '.mim')
    os.makedirs(mim_root, exist_ok=True)
    for name in MIM_FILES:
        src = osp.join(HERE, name)
        if not osp.exists(src):
            continue
        dst = osp.join(mim_root, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            try:
                os.symlink(osp.relpath(src, mim_root), dst)
                continue
            except OSError:
                pass  # e.g. a file system without symlinks: copy instead
        if osp.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmfcclip',
        version=read_version(),
        description='FC-CLIP open-vocabulary panoptic, instance and semantic '
        'segmentation as an OpenMMLab (mmdet/mmseg) plugin',
        long_description=open(osp.join(HERE, 'README.md')).read()
        if osp.exists(osp.join(HERE, 'README.md')) else '',
        long_description_content_type='text/markdown',
        keywords='open-vocabulary segmentation, panoptic, CLIP, OpenMMLab',
        packages=find_packages(exclude=('configs', 'tools', 'tests', 'docs')),
        include_package_data=True,
        python_requires='>=3.8',
        license='Apache License 2.0',
        install_requires=[
            'torch>=2.0',
            'mmengine>=0.10.0,<1.0.0',
            'mmcv>=2.0.0rc4,<2.2.0',
            'mmdet>=3.3.0,<3.4.0',
            'mmsegmentation>=1.2.2,<1.3.0',
            'open_clip_torch>=2.26',
            'numpy',
            'ftfy',
            'regex',
        ],
        extras_require={'tests': ['pytest'], 'mim': ['openmim>=0.3.9']},
        zip_safe=False)
