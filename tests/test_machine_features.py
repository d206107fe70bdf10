"""Every report names the CPU's vector features: parsing of /proc/cpuinfo on x86 and ARM."""

from __future__ import annotations

from edge_runtime.machine import describe, isa_level, machine_info, vector_features

X86_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c avx2 fma bmi2
"""
X86_VNNI = X86_AVX2.replace("bmi2", "bmi2 avx512f avx512bw avx512_vnni")
PI4_64 = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""
PI5_64 = PI4_64.replace("crc32 cpuid", "crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp")
PI_32 = "processor\t: 0\nFeatures\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt lpae evtstrm crc32\n"


def test_x86_flags_give_the_int8_relevant_level():
    assert vector_features(X86_AVX2, "x86_64") == ["sse4_2", "avx", "avx2", "fma", "f16c"]
    assert isa_level(vector_features(X86_AVX2, "x86_64")) == "x86-64 AVX2+FMA (no VNNI)"
    assert isa_level(vector_features(X86_VNNI, "x86_64")) == "x86-64 AVX-512 VNNI"
    assert isa_level(vector_features(X86_VNNI.replace(" avx512_vnni", ""), "x86_64")) == "x86-64 AVX-512 (no VNNI)"


def test_arm_features_line_on_64_and_32_bit_kernels():
    assert vector_features(PI4_64, "aarch64") == ["asimd"]
    assert isa_level(vector_features(PI4_64, "aarch64")) == "ARM NEON"
    assert "asimddp" in vector_features(PI5_64, "aarch64")
    assert isa_level(vector_features(PI5_64, "aarch64")) == "ARM NEON+dotprod"
    assert vector_features(PI_32, "armv7l") == ["neon"]


def test_no_cpuinfo_means_no_features_not_an_error():
    assert vector_features("", "x86_64") == [] and isa_level([]) == "unknown"


def test_this_machine_is_described_with_its_features():
    info = machine_info()
    assert isinstance(info["vector_features"], list) and info["isa_level"]
    line = describe(info)
    assert info["isa_level"] in line and all(f in line for f in info["vector_features"])
    old = {k: v for k, v in info.items() if k not in ("vector_features", "isa_level")}
    assert "vector features not recorded" in describe(old)
