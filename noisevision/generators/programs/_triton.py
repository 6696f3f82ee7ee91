"""Triton kernels of `noisevision.generators.programs.cuda`: programs rendered as fragment shaders.

Each program (a block of one image's pixels) reads its image's operator ids and parameters as
scalars and branches on them, as a GPU runs a fragment shader: the whole tree costs one launch
per slot instead of dozens of tensor operations per operator group. The arithmetic follows the
tensor code of `fields` operation for operation (torch.lerp's two-sided formula included);
atan2 and tanh are written out here, since Triton's interpreter (which the tests use on a CPU)
has no libdevice. Parameter order: that of each `Op.params` dict in `operators`.
"""

import triton
import triton.language as tl

WRAP = tl.constexpr(31)  # operators.LATTICE - 1
ROW = tl.constexpr(5)  # log2(operators.LATTICE)
CELLS = tl.constexpr(1024)  # operators.LATTICE²: lattice values per image


@triton.jit
def lerp(a, b, w):
    """torch.lerp(a, b, w), with its two-sided formula."""
    return tl.where(tl.abs(w) < 0.5, a + w * (b - a), b - (b - a) * (1 - w))


@triton.jit
def fract(v):
    return v - tl.floor(v)


@triton.jit
def tanh(z):
    e = tl.exp(-2 * tl.abs(z))
    t = (1 - e) / (1 + e)
    return tl.where(z < 0, -t, t)


@triton.jit
def atan2(y, x):
    """atan2 to about 1e-7 rad: the octant by comparisons, then Cephes' atanf polynomial."""
    ax, ay = tl.abs(x), tl.abs(y)
    hi = tl.maximum(ax, ay)
    t = tl.where(hi == 0, 0.0, tl.minimum(ax, ay) / tl.where(hi == 0, 1.0, hi))
    big = t > 0.41421356237309503  # tan(π/8)
    z = tl.where(big, (t - 1) / (t + 1), t)
    z2 = z * z
    r = ((8.05374449538e-2 * z2 - 1.38776856032e-1) * z2 + 1.99777106478e-1) * z2 - 3.33329491539e-1
    r = r * z2 * z + z
    r = tl.where(big, r + 0.7853981633974483, r)
    r = tl.where(ay > ax, 1.5707963267948966 - r, r)
    r = tl.where(x < 0, 3.141592653589793 - r, r)
    return tl.where(y < 0, -r, r)


@triton.jit
def rotate(x, y, c, s):
    return c * x - s * y, s * x + c * y


# ------------------------------------------------------------------------------------ noise
@triton.jit
def value_noise(x, y, vals):
    x0, y0 = tl.floor(x), tl.floor(y)
    fx, fy = x - x0, y - y0
    ix, iy = x0.to(tl.int64), y0.to(tl.int64)
    c0, c1 = ix & WRAP, (ix + 1) & WRAP
    r0, r1 = (iy & WRAP) << ROW, ((iy + 1) & WRAP) << ROW
    v00, v10 = tl.load(vals + r0 + c0), tl.load(vals + r0 + c1)
    v01, v11 = tl.load(vals + r1 + c0), tl.load(vals + r1 + c1)
    sx, sy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    return lerp(lerp(v00, v10, sx), lerp(v01, v11, sx), sy) * 2 - 1


@triton.jit
def gradient_noise(x, y, gcos, gsin):
    x0, y0 = tl.floor(x), tl.floor(y)
    fx, fy = x - x0, y - y0
    ix, iy = x0.to(tl.int64), y0.to(tl.int64)
    c0, c1 = ix & WRAP, (ix + 1) & WRAP
    r0, r1 = (iy & WRAP) << ROW, ((iy + 1) & WRAP) << ROW
    d00 = tl.load(gcos + r0 + c0) * fx + tl.load(gsin + r0 + c0) * fy
    d10 = tl.load(gcos + r0 + c1) * (fx - 1) + tl.load(gsin + r0 + c1) * fy
    d01 = tl.load(gcos + r1 + c0) * fx + tl.load(gsin + r1 + c0) * (fy - 1)
    d11 = tl.load(gcos + r1 + c1) * (fx - 1) + tl.load(gsin + r1 + c1) * (fy - 1)
    sx = fx * fx * fx * (fx * (fx * 6 - 15) + 10)
    sy = fy * fy * fy * (fy * (fy * 6 - 15) + 10)
    return lerp(lerp(d00, d10, sx), lerp(d01, d11, sx), sy) * 1.4


@triton.jit
def fbm(x, y, vals, gcos, gsin, gain, OCTAVES: tl.constexpr, GRADIENT: tl.constexpr):
    c, s = 0.8253356149096783, 0.5646424733950354  # cos 0.6, sin 0.6
    total = tl.zeros_like(x)
    amp = gain * 0 + 1
    norm = gain * 0
    for o in tl.static_range(OCTAVES):
        if GRADIENT:
            f = gradient_noise(x + 7.3 * o, y + 3.1 * o, gcos, gsin)
        else:
            f = value_noise(x + 7.3 * o, y + 3.1 * o, vals)
        total = total + amp * f
        norm = norm + amp
        amp = amp * gain
        x, y = 2 * (c * x - s * y), 2 * (s * x + c * y)
    return total / norm


@triton.jit
def voronoi(x, y, vals, angs, jitter, mode):
    x0, y0 = tl.floor(x), tl.floor(y)
    fx, fy = x - x0, y - y0
    ix, iy = x0.to(tl.int64), y0.to(tl.int64)
    d1 = tl.zeros_like(x) + 1e9
    d2 = d1
    val = tl.zeros_like(x)
    for dy in tl.static_range(-1, 2):
        for dx in tl.static_range(-1, 2):
            cell = (((iy + dy) & WRAP) << ROW) + ((ix + dx) & WRAP)
            px = (dx + 0.5) + jitter * (tl.load(vals + cell) - 0.5) - fx
            py = (dy + 0.5) + jitter * (tl.load(angs + cell) - 0.5) - fy
            d = px * px + py * py
            nearer = d < d1
            d2 = tl.where(nearer, d1, tl.minimum(d2, d))
            val = tl.where(nearer, tl.load(vals + ((cell * 7 + 13) & (CELLS - 1))), val)
            d1 = tl.minimum(d1, d)
    f1 = tl.sqrt(d1)
    return tl.where(mode == 0, f1, tl.where(mode == 1, tl.sqrt(d2) - f1, val))


# ------------------------------------------------------------------------------------ operators
@triton.jit
def domain(op, par, x, y, vals):
    """DOMAIN_OPS[op] with parameters par[0..2]."""
    p0, p1, p2 = tl.load(par), tl.load(par + 1), tl.load(par + 2)
    nx, ny = x, y
    if op == 1:  # rotate(angle)
        nx, ny = rotate(x, y, tl.cos(p0), tl.sin(p0))
    elif op == 2:  # scale(sx, sy)
        nx, ny = x * p0, y * p1
    elif op == 3:  # translate(tx, ty)
        nx, ny = x + p0, y + p1
    elif op == 4:  # polar(k, s)
        nx, ny = atan2(y, x) * (p0 / 3.141592653589793), tl.sqrt(x * x + y * y) * p1
    elif op == 5:  # mirror(c, both)
        nx = tl.abs(x - p0)
        ny = tl.where(p1 > 0, tl.abs(y - p0), y)
    elif op == 6:  # kaleidoscope(n)
        sector = 6.283185307179586 / p0
        a = atan2(y, x)
        a = a - tl.floor(a / sector) * sector
        a = tl.abs(a - sector / 2)
        r = tl.sqrt(x * x + y * y)
        nx, ny = r * tl.cos(a), r * tl.sin(a)
    elif op == 7:  # tile(k)
        k = p0 / 2
        nx, ny = (fract(x * k + 0.5) - 0.5) * 2, (fract(y * k + 0.5) - 0.5) * 2
    elif op == 8:  # swirl(twist)
        angle = p0 * tl.sqrt(x * x + y * y)
        nx, ny = rotate(x, y, tl.cos(angle), tl.sin(angle))
    elif op == 9:  # warp(freq, amp)
        wx = fbm(x * p0 + 11.0, y * p0 + 5.0, vals, vals, vals, p0 * 0 + 0.5, 3, False)
        wy = fbm(x * p0 + 23.0, y * p0 + 17.0, vals, vals, vals, p0 * 0 + 0.5, 3, False)
        nx, ny = x + p1 * wx, y + p1 * wy
    elif op == 10:  # fold(ox, oy, angle)
        c, s = tl.cos(p2), tl.sin(p2)
        for _ in tl.static_range(3):
            nx, ny = rotate((tl.abs(nx) - p0) * 1.4, (tl.abs(ny) - p1) * 1.4, c, s)
        nx, ny = nx * 0.4, ny * 0.4
    return nx, ny


@triton.jit
def sharp_edge(sdf, sharp, ring):
    sdf = tl.where(ring > 0, tl.abs(sdf) - 0.05, sdf)
    return tanh(-sdf * sharp)


@triton.jit
def field(op, par, x, y, vals, angs, gcos, gsin):
    """FIELD_OPS[op] with parameters par[0..6]."""
    p0, p1, p2, p3 = tl.load(par), tl.load(par + 1), tl.load(par + 2), tl.load(par + 3)
    p4, p5, p6 = tl.load(par + 4), tl.load(par + 5), tl.load(par + 6)
    f = tl.zeros_like(x)
    if op == 0:  # grating(freq, dir, phase, square)
        along = tl.cos(p1) * x + tl.sin(p1) * y
        f = tanh(tl.sin(p0 * 6.283185307179586 * along + p2) * p3)
    elif op == 1:  # circle(cx, cy, r, sharp, ring)
        dx, dy = x - p0, y - p1
        f = sharp_edge(tl.sqrt(dx * dx + dy * dy) - p2, p3, p4)
    elif op == 2:  # box(cx, cy, hx, hy, sharp, ring)
        qx, qy = tl.abs(x - p0) - p2, tl.abs(y - p1) - p3
        ox, oy = tl.maximum(qx, 0.0), tl.maximum(qy, 0.0)
        f = sharp_edge(tl.sqrt(ox * ox + oy * oy) + tl.minimum(tl.maximum(qx, qy), 0.0), p4, p5)
    elif op == 3:  # segment(ax, ay, bx, by, width, sharp, ring)
        dx, dy = p2 - p0, p3 - p1
        h = ((x - p0) * dx + (y - p1) * dy) / tl.maximum(dx * dx + dy * dy, 1e-6)
        h = tl.minimum(tl.maximum(h, 0.0), 1.0)
        ex, ey = x - p0 - h * dx, y - p1 - h * dy
        f = sharp_edge(tl.sqrt(ex * ex + ey * ey) - p4, p5, p6)
    elif op == 4:  # value-noise(freq, ox, oy)
        f = value_noise(x * p0 + p1, y * p0 + p2, vals)
    elif op == 5:  # gradient-noise(freq, ox, oy)
        f = gradient_noise(x * p0 + p1, y * p0 + p2, gcos, gsin)
    elif op == 6:  # fbm(freq, ox, oy, gain, kind): value, gradient, ridged gradient
        if p4 == 0:
            f = fbm(x * p0 + p1, y * p0 + p2, vals, gcos, gsin, p3, 5, False)
        else:
            f = fbm(x * p0 + p1, y * p0 + p2, vals, gcos, gsin, p3, 5, True)
            if p4 == 2:
                f = 1 - 2 * tl.abs(f)
    elif op == 7:  # voronoi(freq, ox, oy, jitter, mode)
        f = voronoi(x * p0 + p1, y * p0 + p2, vals, angs, p3, p4)
    return f


@triton.jit
def combine(op, par, a, b):
    """COMBINATORS[op] with parameters par[0..1]."""
    p0, p1 = tl.load(par), tl.load(par + 1)
    out = a
    if op == 0:  # add(w)
        out = a + p0 * b
    elif op == 1:  # mul
        out = a * b
    elif op == 2:  # min
        out = tl.minimum(a, b)
    elif op == 3:  # max
        out = tl.maximum(a, b)
    elif op == 4:  # smooth min(k)
        h = tl.minimum(tl.maximum(0.5 + 0.5 * (b - a) / p0, 0.0), 1.0)
        out = lerp(b, a, h) - p0 * h * (1 - h)
    elif op == 5:  # select(t, shift)
        out = tl.where(a > p0, b + p1, a)
    return out


# ------------------------------------------------------------------------------------ kernels
# Grids are (pixel tiles, images): the first axis holds up to 2^31 - 1 programs, the second 65,535.
@triton.jit
def standardise_kernel(f, row_stride, N, BLOCK: tl.constexpr):
    """Each row of f (one program per row) to zero mean and unit std (at least 1e-4), in place:
    sums in a fixed order, whatever the batch."""
    row = f + tl.program_id(0).to(tl.int64) * row_stride
    total = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        total += tl.load(row + offs, mask=offs < N, other=0.0)
    mean = tl.sum(total, axis=0) / N
    total = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        d = tl.where(offs < N, tl.load(row + offs, mask=offs < N, other=0.0) - mean, 0.0)
        total += d * d
    std = tl.maximum(tl.sqrt(tl.sum(total, axis=0) / N), 1e-4)
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        tl.store(row + offs, (tl.load(row + offs, mask=offs < N, other=0.0) - mean) / std, mask=offs < N)


@triton.jit
def global_kernel(coord, gx, gy, ops, par, vals, side, N, SLOTS: tl.constexpr, BLOCK: tl.constexpr):
    """The shader's whole-image domain chain: pixel coordinates -> gx, gy [B, N]."""
    img = tl.program_id(1).to(tl.int64)
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < N
    x = tl.load(coord + offs % side, mask=inside, other=0.0)
    y = tl.load(coord + offs // side, mask=inside, other=0.0)
    lat = vals + img * CELLS
    for s in range(SLOTS):
        x, y = domain(tl.load(ops + img * SLOTS + s), par + (img * SLOTS + s) * 4, x, y, lat)
    tl.store(gx + img * N + offs, x, mask=inside)
    tl.store(gy + img * N + offs, y, mask=inside)


@triton.jit(do_not_specialize=["slot", "reg", "child"])
def node_kernel(
    buf,
    gx,
    gy,
    kind,
    leaf_ops,
    leaf_par,
    field_ops,
    field_par,
    comb_ops,
    comb_par,
    vals,
    angs,
    gcos,
    gsin,
    slot,
    reg,
    child,
    S,
    R,
    N,
    LEAF_SLOTS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Tree slot `slot` (of S) of every image into buf [B, R, N] at `reg`: a field after its domain
    chain (kind 1), the combination of its (standardised) children, at `child` and child + 1
    (kind 2), or nothing (kind 0)."""
    img = tl.program_id(1).to(tl.int64)
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < N
    at = img * S + slot
    what = tl.load(kind + at)
    lat = img * CELLS
    if what == 1:
        x = tl.load(gx + img * N + offs, mask=inside, other=0.0)
        y = tl.load(gy + img * N + offs, mask=inside, other=0.0)
        for s in range(LEAF_SLOTS):
            x, y = domain(
                tl.load(leaf_ops + at * LEAF_SLOTS + s),
                leaf_par + (at * LEAF_SLOTS + s) * 4,
                x,
                y,
                vals + lat,
            )
        f = field(
            tl.load(field_ops + at), field_par + at * 8, x, y, vals + lat, angs + lat, gcos + lat, gsin + lat
        )
        tl.store(buf + (img * R + reg) * N + offs, f, mask=inside)
    if what == 2:
        a = tl.load(buf + (img * R + child) * N + offs, mask=inside, other=0.0)
        b = tl.load(buf + (img * R + child + 1) * N + offs, mask=inside, other=0.0)
        out = combine(tl.load(comb_ops + at), comb_par + at * 4, a, b)
        tl.store(buf + (img * R + reg) * N + offs, out, mask=inside)


# ------------------------------------------------------------------------------------ CPPN
@triton.jit
def activation(a, pre):
    """CPPN_ACTIVATIONS[a]: sin, gaussian, tanh, abs, softplus (torch's, threshold 20), sawtooth."""
    out = pre
    if a == 0:
        out = tl.sin(pre)
    elif a == 1:
        out = tl.exp(-pre * pre) * 2 - 1
    elif a == 2:
        out = tanh(pre)
    elif a == 3:
        out = tl.abs(pre)
    elif a == 4:
        out = tl.where(pre > 20, pre, tl.log(1 + tl.exp(pre)))
    elif a == 5:
        out = fract(pre * 0.5 + 0.5) * 2 - 1
    return out


@triton.jit
def cppn_kernel(
    coord,
    out,
    inp,
    w,
    b,
    w_out,
    b_out,
    alive,
    acts,
    side,
    N,
    LAYERS: tl.constexpr,
    WIDTH: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """A CPPN's three outputs [B, 3, N] (before standardisation). Per image: inp [16] = scale,
    cos and sin of the turn, k, then each Fourier feature's x and y frequencies and phase; w [L, W,
    W] and b [L, W] the layers' weights and biases (gains and the dead units applied), acts [L] their
    activations (one past the last: unused), w_out [W, W] and b_out [W] the output layer (3 rows)."""
    img = tl.program_id(1).to(tl.int64)
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < N
    p = inp + img * 16
    xs = tl.load(coord + offs % side, mask=inside, other=0.0) * tl.load(p)
    ys = tl.load(coord + offs // side, mask=inside, other=0.0) * tl.load(p)
    x, y = rotate(xs, ys, tl.load(p + 1), tl.load(p + 2))
    k_theta = tl.load(p + 3) * atan2(y, x)
    unit = tl.arange(0, WIDTH)[:, None]  # [W, 1]
    h = tl.where(unit == 0, x[None, :], 0.0)
    h = tl.where(unit == 1, y[None, :], h)
    h = tl.where(unit == 2, tl.sqrt(x * x + y * y)[None, :], h)
    h = tl.where(unit == 3, tl.sin(k_theta)[None, :], h)
    h = tl.where(unit == 4, tl.cos(k_theta)[None, :], h)
    for j in tl.static_range(3):
        fx, fy, phase = tl.load(p + 4 + j), tl.load(p + 7 + j), tl.load(p + 10 + j)
        h = tl.where(unit == 5 + j, tl.sin(6.283185307179586 * (fx * x + fy * y) + phase)[None, :], h)
    cols = tl.arange(0, WIDTH)[None, :]
    live = tl.load(alive + img * WIDTH + unit)  # [W, 1]
    for layer in range(LAYERS):
        a = tl.load(acts + img * LAYERS + layer)
        if a < 6:
            at = img * LAYERS + layer
            weights = tl.load(w + (at * WIDTH + unit) * WIDTH + cols)
            pre = tl.dot(weights, h, input_precision="ieee") + tl.load(b + at * WIDTH + unit)
            h = activation(a, pre) * live
    o = tl.dot(tl.load(w_out + (img * WIDTH + unit) * WIDTH + cols), h, input_precision="ieee")
    o = o + tl.load(b_out + img * WIDTH + unit)
    tl.store(out + (img * 3 + unit) * N + offs[None, :], o, mask=(unit < 3) & inside[None, :])
