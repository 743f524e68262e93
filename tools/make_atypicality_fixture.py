#!/usr/bin/env python3
"""Builds the atypicality fixture: a random-weight checkpoint of HRM's atypicality regressor in the
authors' layout (`Predict/atypical_regressor_3fold.py`: `GRUModel` with `gru` = GRU(22 -> 128,
2 layers, batch_first) and `fc` = Linear(128 -> 1), saved as {'epoch', 'state_dict',
'optimizer'}), a `predict.csv` in the HRM demo's layout, and PyTorch's score for every window of
15 consecutive rows. Run by hand from the repository root with torch installed (make_fixtures.py
runs it too):

    python3 tools/make_atypicality_fixture.py     # writes tests/fixtures/atypicality_gru.pth, ...
"""

import csv
import json
import pathlib

import torch
import torch.nn as nn

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures"
LABELS = [1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 16, 17, 18, 19, 20, 23, 24, 25, 27, 28, 32, 43]
WINDOW = 15
FRAMES = 40


class GRUModel(nn.Module):
    """As in the HRM authors' script: the last step's hidden state through a linear layer."""

    def __init__(self, input_size=22, hidden_size=128, num_layers=2):
        super().__init__()
        self.gru = nn.GRU(input_size, hidden_size, num_layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, 1)

    def forward(self, x):
        h0 = torch.zeros(self.gru.num_layers, x.size(0), self.gru.hidden_size)
        out, _ = self.gru(x, h0)
        return self.fc(out[:, -1, :])


def main():
    torch.manual_seed(11)
    model = GRUModel()
    # Larger weights than the default initialisation, so the scores spread out like a trained
    # model's (about 1 to 5) instead of sitting near the bias.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
        model.fc.bias.fill_(3.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = model(torch.rand(4, WINDOW, 22)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()  # the optimizer state a real checkpoint carries
    torch.save({"epoch": 30, "state_dict": model.state_dict(), "optimizer": optimizer.state_dict()},
               OUT / "atypicality_gru.pth")

    # A predict.csv: frames of 0/1 AUs, some 2 ("active on one side", which counts as 1).
    generator = torch.Generator().manual_seed(12)
    values = (torch.rand(FRAMES, 22, generator=generator) < 0.3).int()
    values[torch.rand(FRAMES, 22, generator=generator) < 0.05] = 2
    frames = [3 + 2 * i for i in range(FRAMES)]  # the frame column need not start at 1 or step by 1
    with open(OUT / "atypicality_predict.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["frame"] + [str(label) for label in LABELS])
        for frame, row in zip(frames, values.tolist()):
            writer.writerow([frame] + row)

    model.eval()
    binary = values.clamp(max=1).float()
    windows = torch.stack([binary[i:i + WINDOW] for i in range(FRAMES - WINDOW + 1)])
    with torch.no_grad():
        scores = model(windows)[:, 0].tolist()
    reference = {
        "torch": torch.__version__,
        "window": WINDOW,
        "scores": [{"frame": frames[i + WINDOW - 1], "atypicality": s} for i, s in enumerate(scores)],
    }
    (OUT / "atypicality.json").write_text(json.dumps(reference, indent=1) + "\n")
    print(f"{len(scores)} windows, scores {min(scores):.3f} .. {max(scores):.3f}")


if __name__ == "__main__":
    main()
