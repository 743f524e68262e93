#!/usr/bin/env python3
"""Runs OpenCV's own YuNet detector (cv2.FaceDetectorYN, opencv-python) on the shared photographs
and writes its faces to tests/fixtures/opencv_yunet.json: the independent reference for hrm's
face detection tests (face counts, boxes, 5 keypoints in the image's own pixels).

Run by hand (not in CI), from the repository root, in a venv with opencv-python(-headless):

    python3 tools/opencv_reference.py

OpenCV runs the network at the image's own size (padded to a multiple of 32), with the score
threshold 0.6 and NMS IoU 0.3 that configs/cpu.toml uses. OpenCV orders the keypoints right eye,
left eye, nose tip, right mouth corner, left mouth corner (the subject's right: the image's left).
"""

import hashlib
import json
import pathlib

import cv2
import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "yunet_s_640_640.onnx"
SCORE_THRESHOLD = 0.6
NMS_THRESHOLD = 0.3


# A synthetic group photograph: the five single-face photographs, shrunk with PIL's bilinear resize
# (which hrm reproduces bit for bit) and pasted 29 times on a grey 3000x2171 canvas, so the test
# can rebuild the same pixels without committing an image. Layout: 6 columns x 5 rows of 500x434
# cells, the last cell empty; photo k = cell % 5 shrunk to a side of 150 + 10 * (cell % 7) pixels.
GROUP_SIZE = (3000, 2171)
GROUP_SOURCES = ["0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg", "single_face.jpg"]


def group_photo():
    canvas = Image.new("RGB", GROUP_SIZE, (128, 128, 128))
    for cell in range(29):
        photo = Image.open(SHARED / "images" / GROUP_SOURCES[cell % 5]).convert("RGB")
        side = 150 + 10 * (cell % 7)
        w, h = photo.size
        size = (side, round(side * h / w))
        small = photo.resize(size, Image.BILINEAR)
        col, row = cell % 6, cell // 6
        canvas.paste(small, (col * 500 + 40 + 7 * row, row * 434 + 30 + 5 * col))
    return canvas


def faces_of(image_bgr):
    height, width = image_bgr.shape[:2]
    detector = cv2.FaceDetectorYN.create(str(MODEL), "", (width, height), SCORE_THRESHOLD, NMS_THRESHOLD, 5000)
    _, faces = detector.detect(image_bgr)
    return [{"bbox": [round(float(v), 2) for v in f[0:4]],
             "keypoints": [[round(float(f[4 + 2 * k]), 2), round(float(f[5 + 2 * k]), 2)] for k in range(5)],
             "score": round(float(f[14]), 4)} for f in ([] if faces is None else faces)]


def main():
    result = {"opencv": cv2.__version__, "model": MODEL.name, "score_threshold": SCORE_THRESHOLD,
              "nms_threshold": NMS_THRESHOLD, "images": {}}
    for path in sorted((SHARED / "images").glob("*.jpg")):
        image = cv2.imread(str(path))
        height, width = image.shape[:2]
        rows = faces_of(image)
        result["images"][path.name] = {"size": [width, height], "faces": rows}
        print(f"{path.name}: {len(rows)} faces")
    group = np.asarray(group_photo())
    rows = faces_of(np.ascontiguousarray(group[:, :, ::-1]))
    result["group"] = {"size": list(GROUP_SIZE), "faces_pasted": 29, "rgb_sha256": hashlib.sha256(group.tobytes()).hexdigest(),
                       "faces": rows}
    print(f"synthetic group photograph: {len(rows)} of 29 faces")
    (ROOT / "tests" / "fixtures" / "opencv_yunet.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
