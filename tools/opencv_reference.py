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

import json
import pathlib

import cv2

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "yunet_s_640_640.onnx"
SCORE_THRESHOLD = 0.6
NMS_THRESHOLD = 0.3


def main():
    result = {"opencv": cv2.__version__, "model": MODEL.name, "score_threshold": SCORE_THRESHOLD,
              "nms_threshold": NMS_THRESHOLD, "images": {}}
    for path in sorted((SHARED / "images").glob("*.jpg")):
        image = cv2.imread(str(path))
        height, width = image.shape[:2]
        detector = cv2.FaceDetectorYN.create(str(MODEL), "", (width, height), SCORE_THRESHOLD, NMS_THRESHOLD, 5000)
        _, faces = detector.detect(image)
        rows = []
        for f in ([] if faces is None else faces):
            rows.append({"bbox": [round(float(v), 2) for v in f[0:4]],
                         "keypoints": [[round(float(f[4 + 2 * k]), 2), round(float(f[5 + 2 * k]), 2)] for k in range(5)],
                         "score": round(float(f[14]), 4)})
        result["images"][path.name] = {"size": [width, height], "faces": rows}
        print(f"{path.name}: {len(rows)} faces")
    (ROOT / "tests" / "fixtures" / "opencv_yunet.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
