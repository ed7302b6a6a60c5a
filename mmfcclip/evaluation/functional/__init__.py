from mmfcclip.utils.panoptic_io import OFFSET, VOID, id2rgb, rgb2id

from .panoptic_quality import PQStat, PQStatCat, pq_compute_single_image

__all__ = [
    'OFFSET', 'VOID', 'PQStat', 'PQStatCat', 'id2rgb',
    'pq_compute_single_image', 'rgb2id'
]
