"""Segment a video with FC-CLIP and your own words.

Same flags as ``demo/image_demo.py``; every frame is segmented and drawn
(one task, labels on the segments; no legend by default, since its width
would change from frame to frame)::

    python demo/video_demo.py VIDEO CONFIG --weights CKPT \\
        --texts 'person . bicycle' --stuff-texts 'road . sky' \\
        --out result.mp4 --device cuda
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from mmfcclip.apis.cli import add_model_args, add_vocabulary_args
    parser = argparse.ArgumentParser(
        description='FC-CLIP open-vocabulary segmentation of a video',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='See docs/inference.md.')
    parser.add_argument('video', help='a video file cv2 can read')
    add_model_args(parser)
    add_vocabulary_args(parser)
    parser.add_argument('--out', default=None,
                        help='output video (.mp4, mp4v codec)')
    parser.add_argument('--show', action='store_true',
                        help='display the frames in a window')
    parser.add_argument('--wait-time', type=float, default=1,
                        help='display time of a frame (ms) with --show '
                        '(default: 1)')
    parser.add_argument('--legend', action='store_true',
                        help='draw the legend (frames are resized to the '
                        'first frame\'s size)')
    parser.add_argument('--max-frames', type=int, default=None,
                        help='stop after this many frames')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the demo; returns the exit status."""
    args = parse_args(argv)
    if not args.out and not args.show:
        print('error: nothing to do: give --out and/or --show',
              file=sys.stderr)
        return 2
    import cv2
    from mmengine.utils import ProgressBar

    from mmfcclip.apis.cli import build_inferencer
    from mmfcclip.apis.inference import DeviceUnavailableError
    from mmfcclip.vocabularies import OfficialVocabularyError
    if not osp.isfile(args.video):
        print(f'error: video not found: {args.video}', file=sys.stderr)
        return 2
    video = cv2.VideoCapture(args.video)
    if not video.isOpened():
        print(f'error: cannot read video {args.video}', file=sys.stderr)
        return 2
    try:
        inferencer = build_inferencer(args, show_progress=False)
    # Bad input, not bugs: one line naming the problem. ValueError covers
    # unreadable images and vocabulary strings in the wrong format.
    except (FileNotFoundError, ValueError, OfficialVocabularyError,
            DeviceUnavailableError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if hasattr(inferencer.visualizer, 'legend'):
        inferencer.visualizer.legend = args.legend
    fps = video.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(video.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    if args.max_frames:
        total = min(total, args.max_frames) if total else args.max_frames
    progress = ProgressBar(total, file=sys.stderr) if total else None
    writer, size, count = None, None, 0
    try:
        while args.max_frames is None or count < args.max_frames:
            ok, frame = video.read()
            if not ok:
                break
            drawn = inferencer(
                frame, return_vis=True, pred_score_thr=args.pred_score_thr,
                task=args.task)['visualization'][0]
            drawn = cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)
            if size is None:
                size = (drawn.shape[1], drawn.shape[0])
            elif (drawn.shape[1], drawn.shape[0]) != size:
                drawn = cv2.resize(drawn, size)
            if args.out:
                if writer is None:
                    writer = cv2.VideoWriter(
                        args.out, cv2.VideoWriter_fourcc(*'mp4v'), fps, size)
                writer.write(drawn)
            if args.show:
                cv2.imshow('FC-CLIP', drawn)
                if cv2.waitKey(max(1, int(args.wait_time))) & 0xFF in (
                        27, ord('q')):
                    break
            count += 1
            if progress is not None:
                progress.update()
    finally:
        video.release()
        if writer is not None:
            writer.release()
        if args.show:
            cv2.destroyAllWindows()
    where = f' written to {args.out}' if args.out else ''
    print(f'\n{count} frame(s){where}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
