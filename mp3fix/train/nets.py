"""Generator and critic networks.

Generator contract (shared with the ONNX runtime through the sidecar):
inputs ``logmag`` (N,1,F,T) = log(|X| + floor) of the decoded MP3,
``mask`` (N,1,F,T) = 0 in the intact band, ramping to 1 above the detected
cutoff, ``z`` (N,Z,F,T) ~ N(0, 1), and ``copied`` (N,1,F,T) = ``logmag`` at the
band-replication source bins (``mp3fix.phase.copy_phase_sources``); output
``restored`` (N,1,F,T), a log-magnitude. The intact band is passed through
untouched (``out = (1-mask)*logmag + mask*prediction``), so the model can only
change what the codec removed.

The prediction is a correction on top of ``copied``: the high band gets the
fine structure (harmonics, transients) of the band below, which is also where
its phase comes from, so magnitude and phase stay consistent; the network
learns the envelope and texture that make it sound like the original. The last
layer starts at zero, so an untrained generator is plain band replication.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mp3fix.train.losses import erb_triangles

# Normalisation of natural-log magnitudes (floor 1e-5): music sits around -6 +- 3.
LOG_MEAN = -6.0
LOG_STD = 3.0


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


class Block(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.act = _act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.conv1(x))
        h = self.conv2(h)
        return self.act(h + self.skip(x))


class Generator(nn.Module):
    """A 2D U-Net over (frequency, time).

    A strided stem halves both axes before the U-Net proper, whose levels halve
    them again; a full-resolution head (upsampled features + the raw inputs)
    restores fine detail. Working at half resolution inside cuts the cost of the
    most expensive level by 4x on a CPU.

    Frequency is halved at every level, time only at the first ``time_levels``:
    the model is trained on crops of a few hundred milliseconds and run on
    chunks of nine seconds, so its time axis must stay long at the bottom of the
    U-Net. Halving time at every level left 2 frames there in training, all of
    them edge (zero padding), and a model that was right on 64-frame crops put
    the restored band 40 dB too loud on 800-frame chunks. ``T`` must be a
    multiple of ``2 ** (time_levels + 1)`` (the sidecar's ``time_multiple``),
    the frequency axis of ``2 ** (depth + 1)``.
    """

    kind = "unet"

    def __init__(self, base: int = 16, depth: int = 4, z_channels: int = 2, time_levels: int = 2,
                 head: int | None = None) -> None:
        super().__init__()
        self.depth = depth
        self.time_levels = min(time_levels, depth)
        self.z_channels = z_channels
        cin = 3 + z_channels
        chans = [min(base * 2**i, base * 8) for i in range(depth + 1)]
        self.stem = nn.Conv2d(cin, chans[0], 4, stride=2, padding=1)
        self.enc = nn.ModuleList(Block(chans[i], chans[i]) for i in range(depth))
        self.down = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], 3, stride=(2, 2 if i < self.time_levels else 1), padding=1)
            for i in range(depth)
        )
        self.mid = Block(chans[depth], chans[depth])
        self.up = nn.ModuleList(nn.Conv2d(chans[i + 1], chans[i], 3, padding=1) for i in range(depth))
        self.dec = nn.ModuleList(Block(2 * chans[i], chans[i]) for i in range(depth))
        head = head or chans[0]  # channels of the full-resolution head
        self.head1 = nn.Conv2d(chans[0] + cin, head, 3, padding=1)
        self.head2 = nn.Conv2d(head, 1, 1)
        nn.init.zeros_(self.head2.weight)
        nn.init.zeros_(self.head2.bias)

    @property
    def head_channels(self) -> int:
        return self.head1.out_channels

    def widen_head(self, head: int) -> None:
        """Give the full-resolution head ``head`` channels without changing the
        function: the new channels get fresh input weights and zero output
        weights, so training starts from exactly the narrower model."""
        old1, old2 = self.head1, self.head2
        if head <= old1.out_channels:
            return
        new1 = nn.Conv2d(old1.in_channels, head, 3, padding=1).to(old1.weight)
        new2 = nn.Conv2d(head, 1, 1).to(old2.weight)
        with torch.no_grad():
            new1.weight[: old1.out_channels] = old1.weight
            new1.bias[: old1.out_channels] = old1.bias
            new2.weight.zero_()
            new2.weight[:, : old1.out_channels] = old2.weight
            new2.bias.copy_(old2.bias)
        self.head1, self.head2 = new1, new2

    @property
    def time_multiple(self) -> int:
        return 2 ** (self.time_levels + 1)

    @property
    def z_bins(self) -> int:
        """Rows of z per channel; 0: one per frequency bin, as many as the input has."""
        return 0

    def arch(self) -> dict:
        return {"kind": self.kind, "base": self.enc[0].conv1.in_channels, "depth": self.depth,
                "time_levels": self.time_levels, "z_channels": self.z_channels, "head": self.head_channels}

    def forward(
        self, logmag: torch.Tensor, mask: torch.Tensor, z: torch.Tensor, copied: torch.Tensor
    ) -> torch.Tensor:
        x = torch.cat([(logmag - LOG_MEAN) / LOG_STD, mask, z, (copied - LOG_MEAN) / LOG_STD], dim=1)
        h = F.leaky_relu(self.stem(x), 0.2)
        skips = []
        for i in range(self.depth):
            h = self.enc[i](h)
            skips.append(h)
            h = F.leaky_relu(self.down[i](h), 0.2)
        h = self.mid(h)
        for i in reversed(range(self.depth)):
            h = F.interpolate(h, scale_factor=(2.0, 2.0 if i < self.time_levels else 1.0), mode="nearest")
            h = F.leaky_relu(self.up[i](h), 0.2)
            h = self.dec[i](torch.cat([h, skips[i]], dim=1))
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = F.leaky_relu(self.head1(torch.cat([h, x], dim=1)), 0.2)
        pred = copied + self.head2(h) * LOG_STD
        return (1.0 - mask) * logmag + mask * pred


class Critic(nn.Module):
    """Patch critic on (log-magnitude, MP3 log-magnitude, mask), spectrally normalised."""

    kind = "bins"

    def __init__(self, base: int = 32, layers: int = 4) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        convs = []
        cin = 3
        for i in range(layers):
            cout = min(base * 2**i, base * 4)
            convs.append(sn(nn.Conv2d(cin, cout, (5, 3), stride=(2, 1 if i == 0 else 2), padding=(2, 1))))
            cin = cout
        self.convs = nn.ModuleList(convs)
        self.head = sn(nn.Conv2d(cin, 1, 3, padding=1))

    def forward(self, spec: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Returns the feature maps of every layer, the patch logits last."""
        h = torch.cat([(spec - LOG_MEAN) / LOG_STD, (cond - LOG_MEAN) / LOG_STD, mask], dim=1)
        feats = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
            feats.append(h)
        feats.append(self.head(h))
        return feats


class BandCritic(Critic):
    """The same patch critic on ERB band levels instead of bins.

    ``benchmarks/oracles.py`` puts what a restorer can still win in how each
    band's level moves frame by frame, and the band generator predicts exactly
    that; a critic that sees bins judges mostly band copy's fine structure,
    which the generator cannot change. This one sees the log RMS level of the
    ``bands`` ERB bands of the output and of the MP3 (the same analysis as the
    band generator's) at full time resolution, and the mask at each band's
    centre.
    """

    kind = "band"

    def __init__(self, n_bins: int = 512, sample_rate: int = 44100, n_fft: int = 1024, bands: int = 64,
                 base: int = 32, layers: int = 4) -> None:
        super().__init__(base, layers)
        analysis = band_matrices(n_bins, sample_rate, n_fft, bands)[0]
        self.register_buffer("analysis", analysis, persistent=False)
        self.register_buffer("centres", analysis.argmax(dim=1), persistent=False)

    def forward(self, spec: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        def levels(logmag: torch.Tensor) -> torch.Tensor:
            return 0.5 * torch.log(torch.matmul(self.analysis, torch.exp(2.0 * logmag)) + 1e-10)

        return super().forward(levels(spec), levels(cond), torch.index_select(mask, 2, self.centres))


def build_critic(arch: dict) -> Critic:
    """The critic a checkpoint's ``arch`` describes (``critic_kind``: bins, the
    default and all runs before it existed, or band)."""
    if arch.get("critic_kind", "bins") == "band":
        return BandCritic(base=arch.get("critic_base", 32))
    return Critic(base=arch.get("critic_base", 32))


def band_matrices(n_bins: int, sample_rate: int, n_fft: int, bands: int,
                  fmin: float = 50.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Triangular bands evenly spaced in ERB number: ``analysis`` (bands, n_bins),
    rows summing to 1 (a band's mean power), and ``synthesis`` (n_bins, bands),
    rows summing to 1 where any band covers the bin (a bin's gain interpolated
    between the two nearest band centres)."""
    w = erb_triangles(n_bins, sample_rate, n_fft, bands, fmin, to_nyquist=True)
    analysis = w / w.sum(dim=1, keepdim=True)
    synthesis = w.T / w.T.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return analysis.float(), synthesis.float()


class BandGenerator(nn.Module):
    """A generator that predicts only each band's level, frame by frame.

    ``benchmarks/oracles.py`` found that almost all the ViSQOL a restorer can
    win above the cutoff is in how band levels move from frame to frame; the
    fine structure inside a band can stay band copy's. So this network works on
    ``bands`` ERB-spaced band levels (64 instead of 512 bins: about an eighth of
    the pixels of :class:`Generator`), at full time resolution, and returns a
    gain per band and frame, interpolated across the bins of the band and
    applied to ``copied``. Same inputs, same output, same sidecar contract as
    :class:`Generator`: the runtime does not know which one it runs.
    """

    kind = "band"

    def __init__(self, n_bins: int = 512, sample_rate: int = 44100, n_fft: int = 1024, bands: int = 64,
                 base: int = 16, depth: int = 3, z_channels: int = 2, time_levels: int = 2,
                 head: int | None = None, fine: int = 0) -> None:
        super().__init__()
        self.depth = depth
        self.bands = bands
        self.fine = fine
        self.base = base
        self.time_levels = min(time_levels, depth)
        self.z_channels = z_channels
        analysis, synthesis = band_matrices(n_bins, sample_rate, n_fft, bands)
        self.register_buffer("analysis", analysis)
        self.register_buffer("synthesis", synthesis)
        # The mask is read at each band's centre bin (a Gather, not a product
        # with the whole analysis matrix). z has one row per band (``z_bins``);
        # given one per bin, as in training, it is read at the centre bins too:
        # i.i.d. N(0, 1) either way.
        self.register_buffer("centres", analysis.argmax(dim=1))
        # which band is which: a convolution cannot tell 4 kHz from 16 kHz, and
        # how loud a band should be depends on where it is
        self.register_buffer("position", torch.linspace(-1.0, 1.0, bands)[:, None])
        cin = 4 + z_channels
        chans = [min(base * 2**i, base * 4) for i in range(depth + 1)]
        self.stem = nn.Conv2d(cin, chans[0], 3, padding=1)
        self.enc = nn.ModuleList(Block(chans[i], chans[i]) for i in range(depth))
        self.down = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], 3, stride=(2, 2 if i < self.time_levels else 1), padding=1)
            for i in range(depth)
        )
        self.mid = Block(chans[depth], chans[depth])
        self.up = nn.ModuleList(nn.Conv2d(chans[i + 1], chans[i], 3, padding=1) for i in range(depth))
        self.dec = nn.ModuleList(Block(2 * chans[i], chans[i]) for i in range(depth))
        head = head or chans[0]
        self.head1 = nn.Conv2d(chans[0] + cin, head, 3, padding=1)
        self.head2 = nn.Conv2d(head, 1, 1)
        nn.init.zeros_(self.head2.weight)
        nn.init.zeros_(self.head2.bias)
        if fine:
            # An optional full-resolution touch-up of the result (inputs: it,
            # the MP3 and the mask): band gains cannot smooth band replication's
            # seams or shape the spectrum inside a band. Starts at zero.
            self.fine1 = nn.Conv2d(3, fine, (5, 1), padding=(2, 0))
            self.fine2 = nn.Conv2d(fine, 1, (5, 1), padding=(2, 0))
            nn.init.zeros_(self.fine2.weight)
            nn.init.zeros_(self.fine2.bias)

    @property
    def head_channels(self) -> int:
        return self.head1.out_channels

    @property
    def time_multiple(self) -> int:
        return 2**self.time_levels

    @property
    def z_bins(self) -> int:
        """Rows of z per channel: one per band (the runtime draws 8x less noise)."""
        return self.bands

    def arch(self) -> dict:
        return {"kind": self.kind, "bands": self.bands, "base": self.base, "depth": self.depth,
                "time_levels": self.time_levels, "z_channels": self.z_channels, "head": self.head_channels,
                "fine": self.fine}

    def _levels(self, logmag: torch.Tensor) -> torch.Tensor:
        """(N,1,F,T) log magnitude -> (N,1,bands,T) log of the band's RMS magnitude."""
        power = torch.exp(2.0 * logmag)
        return 0.5 * torch.log(torch.matmul(self.analysis, power) + 1e-10)

    def forward(
        self, logmag: torch.Tensor, mask: torch.Tensor, z: torch.Tensor, copied: torch.Tensor
    ) -> torch.Tensor:
        levels = (self._levels(torch.cat([logmag, copied], dim=1)) - LOG_MEAN) / LOG_STD
        x = torch.cat([
            levels[:, :1],
            torch.index_select(mask, 2, self.centres),
            z if z.shape[2] == self.bands else torch.index_select(z, 2, self.centres),
            levels[:, 1:],
            self.position.expand(logmag.shape[0], 1, self.bands, logmag.shape[-1]),
        ], dim=1)
        h = F.leaky_relu(self.stem(x), 0.2)
        skips = []
        for i in range(self.depth):
            h = self.enc[i](h)
            skips.append(h)
            h = F.leaky_relu(self.down[i](h), 0.2)
        h = self.mid(h)
        for i in reversed(range(self.depth)):
            h = F.interpolate(h, scale_factor=(2.0, 2.0 if i < self.time_levels else 1.0), mode="nearest")
            h = F.leaky_relu(self.up[i](h), 0.2)
            h = self.dec[i](torch.cat([h, skips[i]], dim=1))
        h = F.leaky_relu(self.head1(torch.cat([h, x], dim=1)), 0.2)
        pred = copied + torch.matmul(self.synthesis, self.head2(h)) * LOG_STD
        if self.fine:
            f = torch.cat([(pred - LOG_MEAN) / LOG_STD, (logmag - LOG_MEAN) / LOG_STD, mask], dim=1)
            pred = pred + self.fine2(F.leaky_relu(self.fine1(f), 0.2)) * LOG_STD
        return (1.0 - mask) * logmag + mask * pred


def build_generator(arch: dict) -> Generator | BandGenerator:
    """The generator a checkpoint's or a sidecar's ``arch`` describes (runs from
    before ``kind`` existed are U-Nets)."""
    if arch.get("kind", "unet") == "band":
        return BandGenerator(bands=arch["bands"], base=arch["base"], depth=arch["depth"],
                             z_channels=arch["z_channels"], time_levels=arch["time_levels"], head=arch.get("head"),
                             fine=arch.get("fine", 0))
    return Generator(base=arch["base"], depth=arch["depth"], z_channels=arch["z_channels"],
                     time_levels=arch.get("time_levels", arch["depth"]), head=arch.get("head"))
