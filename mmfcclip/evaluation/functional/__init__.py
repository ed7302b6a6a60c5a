from .panoptic_quality import (OFFSET, VOID, PQStat, PQStatCat, id2rgb,
                               imread_panoptic_rgb, pq_compute_multi_core,
                               pq_compute_single_core, pq_compute_single_image,
                               rgb2id)

__all__ = [
    'OFFSET', 'VOID', 'PQStat', 'PQStatCat', 'id2rgb', 'imread_panoptic_rgb',
    'pq_compute_multi_core', 'pq_compute_single_core',
    'pq_compute_single_image', 'rgb2id'
]
