"""PyTorch twins of Kestrel's CIFAR ResNet v1 (layers/resnet.h) and of its CIFAR-10 reader, shared by
tools/pytorch_reference.py (section "resnet") and tools/pytorch_train_reference.py.

Architecture (He et al. 2015, CIFAR variant, 1x1 projection shortcuts with BN): conv3x3(16)-BN-ReLU
-> 3 stages of n BasicBlocks (16, 32, 64 channels; stride 2 at the start of stages 2 and 3) ->
global average pooling -> Linear(64, classes). Block: conv3x3-BN-ReLU-conv3x3-BN, + shortcut
(identity, or conv1x1(stride)-BN when the shape changes), ReLU. Module names are Kestrel's graph
names, so state_dict() and a Kestrel checkpoint (layers/checkpoint.h) name the same tensors:
conv1.weight, bn1.running_mean, layer1.0.conv1.weight, layer2.0.shortcut.0.weight,
layer2.0.shortcut.1.weight, fc.weight, fc.bias. Initialisation as Kestrel's: He normal
(fan_in) convolutions, BN gamma 1 / beta 0, Xavier-uniform dense weight, U(+-1/sqrt(fan_in)) bias.

Imports torch lazily (inside the functions), so the scripts' --help works without PyTorch.
"""
import os

# CIFAR-10's per-channel mean and standard deviation (layers/trainer.h kCifarMean / kCifarStd).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
RECORD = 1 + 3 * 32 * 32


def exact_fp32(torch):
    """Exact fp32 convolutions and matrix products (no TF32), as Kestrel's fp32. Through the legacy
    switches while this PyTorch has them: on 2.9-2.11 setting the new ones (fp32_precision =
    "ieee") makes torch.compile's Inductor, which still reads the legacy ones, fail with "mix of
    the legacy and new APIs" (pytorch/pytorch#166387), so the compiled ResNet rows were lost. The
    new switches only where the legacy ones are gone."""
    import warnings
    if hasattr(torch.backends.cudnn, "allow_tf32") and hasattr(torch.backends.cuda.matmul, "allow_tf32"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy switches' deprecation notice
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
    else:
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"


def depth_blocks(model):
    """'resnet20' -> 3 blocks a stage (depth 6n+2); raises ValueError for other names."""
    if not model.startswith("resnet") or not model[6:].isdigit():
        raise ValueError("model must be resnetD with D = 6n+2 (resnet20, resnet56, ...), got %r" % model)
    depth = int(model[6:])
    if depth < 8 or (depth - 2) % 6:
        raise ValueError("CIFAR ResNet depth must be 6n+2, got %d" % depth)
    return (depth - 2) // 6


def cifar_resnet(torch, model, classes=10):
    """The CIFAR ResNet v1 named `model` ('resnet20', 'resnet56', 'resnet110', ...)."""
    nn = torch.nn
    F = torch.nn.functional
    n = depth_blocks(model)

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Sequential()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + self.shortcut(x))

    class CifarResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            cin = 16
            for stage, width in enumerate((16, 32, 64)):
                blocks = []
                for b in range(n):
                    blocks.append(BasicBlock(cin, width, 2 if (stage > 0 and b == 0) else 1))
                    cin = width
                setattr(self, "layer%d" % (stage + 1), nn.Sequential(*blocks))
            self.fc = nn.Linear(64, classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
            nn.init.xavier_uniform_(self.fc.weight)
            bound = 1.0 / 64 ** 0.5
            nn.init.uniform_(self.fc.bias, -bound, bound)

        def forward(self, x):
            x = F.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    return CifarResNet()


def read_cifar10_split(torch, paths):
    """Images [N, 3, 32, 32] uint8 and labels [N] int64 from official binary batch files (3073-byte
    records: label byte, 1024 R, 1024 G, 1024 B), as layers/cifar10.h reads them."""
    chunks = []
    for p in paths:
        with open(p, "rb") as f:
            data = f.read()
        if not data or len(data) % RECORD:
            raise ValueError("%s: %d bytes is not a whole number of %d-byte CIFAR-10 records" % (p, len(data), RECORD))
        chunks.append(data)
    raw = torch.frombuffer(bytearray(b"".join(chunks)), dtype=torch.uint8).view(-1, RECORD)
    labels = raw[:, 0].long()
    if int(labels.max()) > 9:
        raise ValueError("%s: a label byte above 9" % ", ".join(paths))
    return raw[:, 1:].reshape(-1, 3, 32, 32).clone(), labels.clone()


def load_cifar10(torch, folder):
    """(train_images, train_labels, test_images, test_labels) from `folder` or
    `folder`/cifar-10-batches-bin, as kestrel::load_cifar10."""
    if not os.path.exists(os.path.join(folder, "test_batch.bin")):
        folder = os.path.join(folder, "cifar-10-batches-bin")
    train = read_cifar10_split(torch, [os.path.join(folder, "data_batch_%d.bin" % i) for i in range(1, 6)])
    test = read_cifar10_split(torch, [os.path.join(folder, "test_batch.bin")])
    return train + test


def normalise(torch, images_u8, device):
    """uint8 [N, 3, 32, 32] -> float32 normalised with CIFAR's mean and std."""
    mean = torch.tensor(CIFAR_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, device=device).view(1, 3, 1, 1)
    return (images_u8.float() / 255.0 - mean) / std


def augment(torch, padded_u8, index, pad=4, flip=True, generator=None):
    """Random crop (from images zero-padded by `pad`, [N, 3, 32 + 2 pad, 32 + 2 pad] uint8 on the
    GPU) and horizontal flip of the images at `index`, on the device; returns uint8 [B, 3, 32, 32]."""
    b = index.numel()
    dev = padded_u8.device
    span = 2 * pad + 1
    dx = torch.randint(0, span, (b,), device=dev, generator=generator)
    dy = torch.randint(0, span, (b,), device=dev, generator=generator)
    ar = torch.arange(32, device=dev)
    rows = (dy[:, None] + ar[None, :])[:, None, :, None]
    cols = (dx[:, None] + ar[None, :])[:, None, None, :]
    imgs = padded_u8[index[:, None, None, None], torch.arange(3, device=dev)[None, :, None, None], rows, cols]
    if flip:
        mask = torch.rand(b, device=dev, generator=generator) < 0.5
        imgs = torch.where(mask[:, None, None, None], imgs.flip(3), imgs)
    return imgs
