"""PyTorch modules of the two HRM model families without a library class, written for the parity
fixtures after reading the authors' code, with the authors' module names (so their state dicts
have the published keys) and every width a parameter (so the fixtures can be small):

- ME-GraphAU stage 1 (`CVI-SZU/ME-GraphAU`, `model/ANFL.py`: `MEFARG` with the ANFL head) on a
  torchvision ResNet backbone whose `fc` is dropped and whose last map is read as tokens, or on
  the Swin transformer of its `model/swin_transformer.py` (its classifier dropped);
- EmoFAN for AUs (`jingyang2017/aunet_train`, `models/emonet_split.py`: `EmoNet`, FAN's stacked
  hourglasses and EmoNet's head), where every "InstanceNorm2d" is a BatchNorm2d because that file
  rebinds `nn.InstanceNorm2d = nn.BatchNorm2d` before defining its layers.

Both are used in eval mode only.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


# --- ME-GraphAU -------------------------------------------------------------------------------

class LinearBlock(nn.Module):
    """Linear, then BatchNorm1d over the features and ReLU, on tokens [B, T, C]."""

    def __init__(self, inputs, outputs):
        super().__init__()
        self.fc = nn.Linear(inputs, outputs)
        self.bn = nn.BatchNorm1d(outputs)

    def forward(self, x):
        y = self.fc(x).permute(0, 2, 1)
        return F.relu(self.bn(y)).permute(0, 2, 1)


class GNN(nn.Module):
    """One graph layer over the AU nodes: each node keeps its K most similar nodes (every node
    tied with the K-th is kept), X' = ReLU(X + BN(A V(X) + U(X))), A the symmetrically
    normalised adjacency, BN a BatchNorm1d over the nodes."""

    def __init__(self, features, nodes, neighbors, metric):
        super().__init__()
        self.neighbors, self.metric = neighbors, metric
        self.U = nn.Linear(features, features)
        self.V = nn.Linear(features, features)
        self.bnv = nn.BatchNorm1d(nodes)

    def adjacency(self, x):
        k = self.neighbors
        if self.metric in ("dots", "cosine"):
            y = F.normalize(x, p=2, dim=-1) if self.metric == "cosine" else x
            similarity = torch.bmm(y, y.transpose(1, 2))
            kth = similarity.topk(k, dim=-1, largest=True).values[:, :, -1:]
            return (similarity >= kth).float()
        distance = (x.unsqueeze(2) - x.unsqueeze(1)).abs().sum(-1)
        kth = distance.topk(k, dim=-1, largest=False).values[:, :, -1:]
        return (distance <= kth).float()

    def forward(self, x):
        adjacency = self.adjacency(x.detach())
        scale = adjacency.sum(-1) ** -0.5
        a = scale.unsqueeze(2) * adjacency * scale.unsqueeze(1)
        return F.relu(x + self.bnv(torch.bmm(a, self.V(x)) + self.U(x)))


class Head(nn.Module):
    """AFG (a LinearBlock per AU, averaged over the tokens), FGG (the GNN), and the cosine
    similarity of each node with its class vector relu(sc)."""

    def __init__(self, features, nodes, neighbors, metric):
        super().__init__()
        self.class_linears = nn.ModuleList(LinearBlock(features, features) for _ in range(nodes))
        self.gnn = GNN(features, nodes, neighbors, metric)
        self.sc = nn.Parameter(torch.empty(nodes, features))
        nn.init.xavier_uniform_(self.sc)

    def forward(self, x):
        nodes = torch.stack([block(x).mean(dim=1) for block in self.class_linears], dim=1)
        nodes = self.gnn(nodes)
        classes = F.normalize(F.relu(self.sc), p=2, dim=-1)
        return (F.normalize(nodes, p=2, dim=-1) * classes.unsqueeze(0)).sum(-1)


class ResnetTokens(nn.Module):
    """A torchvision ResNet's stem and stages; its last map [B, C, H, W] as tokens [B, HW, C]."""

    def __init__(self, resnet):
        super().__init__()
        for name in ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, name, getattr(resnet, name))

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.flatten(2).permute(0, 2, 1)


class MEFARG(nn.Module):
    """`backbone`: a torchvision ResNet (its `fc` dropped; nodes of a quarter of its channels) or
    a SwinTokens (nodes of half its channels)."""

    def __init__(self, backbone, nodes=22, neighbors=4, metric="dots"):
        super().__init__()
        if isinstance(backbone, SwinTokens):
            self.backbone, channels, features = backbone, backbone.num_features, backbone.num_features // 2
        else:
            self.backbone, channels = ResnetTokens(backbone), backbone.fc.in_features
            features = channels // 4
        self.global_linear = LinearBlock(channels, features)
        self.head = Head(features, nodes, neighbors, metric)

    def forward(self, x):
        return self.head(self.global_linear(self.backbone(x)))


# --- Swin backbone (ME-GraphAU's `model/swin_transformer.py`, Liu et al. 2021) -------------------

def window_mask(resolution, window, shift):
    """The -100/0 attention mask of shifted windows: tokens from different regions of the rolled
    map do not attend to each other."""
    region = torch.zeros(resolution, resolution)
    bounds = (0, resolution - window, resolution - shift, resolution)
    for i in range(3):
        for j in range(3):
            region[bounds[i]:bounds[i + 1], bounds[j]:bounds[j + 1]] = 3 * i + j
    windows = to_windows(region[None, :, :, None], window).flatten(1)  # [nW, w*w]
    different = windows.unsqueeze(1) != windows.unsqueeze(2)
    return torch.zeros(different.shape).masked_fill(different, -100.0)


def to_windows(x, window):
    """[B, H, W, C] -> [B * nW, w, w, C], windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c)


def from_windows(windows, window, h, w):
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


class WindowAttention(nn.Module):
    def __init__(self, dim, window, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        relative = (coords[:, :, None] - coords[:, None, :]) + (window - 1)  # [2, w*w, w*w]
        self.register_buffer("relative_position_index", relative[0] * (2 * window - 1) + relative[1])
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attention = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        attention = attention + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            windows = mask.shape[0]
            attention = attention.view(-1, windows, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attention = attention.view(-1, self.heads, n, n)
        x = (attention.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    """Pre-norm window attention (on the map rolled by `shift` in odd blocks) and MLP. A map no
    larger than the window is one window, never shifted."""

    def __init__(self, dim, resolution, heads, window, shift):
        super().__init__()
        if resolution <= window:
            window, shift = resolution, 0
        self.resolution, self.window, self.shift = resolution, window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)
        self.register_buffer("attn_mask", window_mask(resolution, window, shift) if shift else None)

    def forward(self, x):
        b, _, c = x.shape
        r, s = self.resolution, self.shift
        y = self.norm1(x).view(b, r, r, c)
        if s:
            y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
        y = self.attn(to_windows(y, self.window).view(-1, self.window ** 2, c), self.attn_mask)
        y = from_windows(y.view(-1, self.window, self.window, c), self.window, r, r)
        if s:
            y = torch.roll(y, shifts=(s, s), dims=(1, 2))
        x = x + y.reshape(b, r * r, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """Each 2x2 group of tokens concatenated (top-left, bottom-left, top-right, bottom-right),
    normalised and projected to twice the width."""

    def __init__(self, resolution, dim):
        super().__init__()
        self.resolution = resolution
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x):
        b, _, c = x.shape
        x = x.view(b, self.resolution, self.resolution, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinStage(nn.Module):
    def __init__(self, dim, resolution, depth, heads, window, merge):
        super().__init__()
        self.blocks = nn.ModuleList(SwinBlock(dim, resolution, heads, window, 0 if i % 2 == 0 else window // 2)
                                    for i in range(depth))
        self.downsample = PatchMerging(resolution, dim) if merge else None

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class PatchEmbed(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class SwinTokens(nn.Module):
    """Swin's tokens after its last stage and `norm` (its classifier dropped, as MEFARG does)."""

    def __init__(self, dim=96, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24), window=7, image=224, patch=4):
        super().__init__()
        self.patch_embed = PatchEmbed(patch, dim)
        resolution = image // patch
        self.layers = nn.ModuleList(
            SwinStage(dim * 2 ** i, resolution // 2 ** i, depth, heads[i], window, i < len(depths) - 1)
            for i, depth in enumerate(depths))
        self.num_features = dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(self.num_features)

    def forward(self, x):
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


# --- EmoFAN -----------------------------------------------------------------------------------

def conv3x3(inputs, outputs):
    return nn.Conv2d(inputs, outputs, kernel_size=3, stride=1, padding=1, bias=False)


class ConvBlock(nn.Module):
    """Three pre-activated 3x3 convolutions (out/2, out/4, out/4 channels) concatenated, plus the
    input (through BN-ReLU-1x1 convolution when the width changes)."""

    def __init__(self, inputs, outputs):
        super().__init__()
        half, quarter = outputs // 2, outputs // 4
        self.bn1, self.conv1 = nn.BatchNorm2d(inputs), conv3x3(inputs, half)
        self.bn2, self.conv2 = nn.BatchNorm2d(half), conv3x3(half, quarter)
        self.bn3, self.conv3 = nn.BatchNorm2d(quarter), conv3x3(quarter, quarter)
        self.downsample = None
        if inputs != outputs:
            self.downsample = nn.Sequential(nn.BatchNorm2d(inputs), nn.ReLU(True),
                                            nn.Conv2d(inputs, outputs, kernel_size=1, bias=False))

    def forward(self, x):
        a = self.conv1(F.relu(self.bn1(x)))
        b = self.conv2(F.relu(self.bn2(a)))
        c = self.conv3(F.relu(self.bn3(b)))
        residual = x if self.downsample is None else self.downsample(x)
        return torch.cat((a, b, c), 1) + residual


class HourGlass(nn.Module):
    """At each level: the map through b1, and its half-size copy through b2, the next level (or
    b2_plus at the bottom) and b3, upsampled back (nearest) and added."""

    def __init__(self, depth, features):
        super().__init__()
        self.depth = depth
        for level in range(depth, 0, -1):
            self.add_module(f"b1_{level}", ConvBlock(features, features))
            self.add_module(f"b2_{level}", ConvBlock(features, features))
            if level == 1:
                self.add_module(f"b2_plus_{level}", ConvBlock(features, features))
            self.add_module(f"b3_{level}", ConvBlock(features, features))

    def level(self, level, x):
        up = getattr(self, f"b1_{level}")(x)
        low = getattr(self, f"b2_{level}")(F.max_pool2d(x, 2, stride=2))
        low = self.level(level - 1, low) if level > 1 else getattr(self, f"b2_plus_{level}")(low)
        low = getattr(self, f"b3_{level}")(low)
        return up + F.interpolate(low, scale_factor=2, mode="nearest")

    def forward(self, x):
        return self.level(self.depth, x)


class FAN(nn.Module):
    def __init__(self, stacks, depth=4, stem=64, mid=128, features=256, landmarks=68):
        super().__init__()
        self.stacks = stacks
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(stem)
        self.conv2 = ConvBlock(stem, mid)
        self.conv3 = ConvBlock(mid, mid)
        self.conv4 = ConvBlock(mid, features)
        for i in range(stacks):
            self.add_module(f"m{i}", HourGlass(depth, features))
            self.add_module(f"top_m_{i}", ConvBlock(features, features))
            self.add_module(f"conv_last{i}", nn.Conv2d(features, features, kernel_size=1))
            self.add_module(f"bn_end{i}", nn.BatchNorm2d(features))
            self.add_module(f"l{i}", nn.Conv2d(features, landmarks, kernel_size=1))
            if i < stacks - 1:
                self.add_module(f"bl{i}", nn.Conv2d(features, features, kernel_size=1))
                self.add_module(f"al{i}", nn.Conv2d(landmarks, features, kernel_size=1))

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.conv4(self.conv3(F.max_pool2d(self.conv2(x), 2, stride=2)))
        previous, features = x, []
        for i in range(self.stacks):
            y = getattr(self, f"top_m_{i}")(getattr(self, f"m{i}")(previous))
            y = F.relu(getattr(self, f"bn_end{i}")(getattr(self, f"conv_last{i}")(y)))
            heatmaps = getattr(self, f"l{i}")(y)
            if i < self.stacks - 1:
                y = getattr(self, f"bl{i}")(y)
                previous = previous + y + getattr(self, f"al{i}")(heatmaps)
            features.append(y)
        return x, features, heatmaps


class FanFeatures(nn.Module):
    """FAN's own map beside its stacks' features, these weighted by the summed last heatmaps."""

    def __init__(self, fan):
        super().__init__()
        self.fan = fan

    def forward(self, x):
        x, features, heatmaps = self.fan(x)
        features = torch.cat(features, dim=1) * heatmaps.sum(dim=1, keepdim=True)
        return torch.cat((x, features), dim=1)


class EmoHead(nn.Module):
    def __init__(self, inputs, outputs, width=256, blocks=4, hidden=128):
        super().__init__()
        self.conv1x1_input_emo_2 = nn.Conv2d(inputs, width, kernel_size=1)
        layers = []
        for _ in range(blocks):
            layers += [ConvBlock(width, width), nn.MaxPool2d(2, 2)]
        self.emo_net_2 = nn.Sequential(*layers)
        self.emo_fc_2 = nn.Sequential(nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(True),
                                      nn.Linear(hidden, outputs))

    def forward(self, x):
        x = F.avg_pool2d(self.emo_net_2(self.conv1x1_input_emo_2(x)), 4)
        return self.emo_fc_2(x.flatten(1))


class EmoNet(nn.Module):
    """`feature` (FAN, frozen) and `predictor` (the AU head): AU logits for a 256x256 input."""

    def __init__(self, outputs=22, stacks=2, depth=4, stem=64, mid=128, features=256, landmarks=68,
                 head_width=256, head_blocks=4, head_hidden=128):
        super().__init__()
        self.feature = FanFeatures(FAN(stacks, depth, stem, mid, features, landmarks))
        self.predictor = EmoHead(features * (stacks + 1), outputs, head_width, head_blocks, head_hidden)

    def forward(self, x):
        return self.predictor(self.feature(x))
