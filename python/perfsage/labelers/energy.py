"""Energy per inference on an Ethos-U system: MODELLED, NOT MEASURED.

No Ethos-U in this project is on a power meter. The energy label is a first-order model built
from counts Vela reports for the compiled network and published per-operation energies::

    energy = MACs x E(int8 MAC)
           + sum over memory areas (SRAM, DRAM, off-chip flash) of bytes moved x E(byte there)
           + static power x latency

It ranks models the way their MAC and memory traffic rank them; its absolute value is only as good
as the constants below, which come from different process nodes and parts (a 45 nm survey, a
commodity serial flash). Every constant is one row of ``ENERGY_CONSTANTS`` with its value, unit
and source; ``energy_table()`` returns them for a dataset's provenance.

Static power defaults to 0 mW: Arm publishes no static or leakage power for Ethos-U55/U65 (their
announcements give MACs per cycle and relative efficiency only), and this project does not invent
one. Pass a figure measured on your silicon as ``static_power_mw`` (``get_labeler(...,
static_power_mw=...)``) to include it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Mapping


@dataclass(frozen=True)
class EnergyConstant:
    name: str
    value: float
    unit: str
    source: str


_HOROWITZ = (
    'M. Horowitz, "Computing\'s energy problem (and what we can do about it)", ISSCC 2014, '
    "energy table for 45 nm at 0.9 V"
)

ENERGY_CONSTANTS: Dict[str, EnergyConstant] = {
    row.name: row
    for row in [
        EnergyConstant(
            "int8_mac", 0.3, "pJ/MAC",
            f"{_HOROWITZ}: 8-bit multiply 0.2 pJ + 32-bit add 0.1 pJ (the product is accumulated "
            "at 32 bits).",
        ),
        EnergyConstant(
            "sram", 12.5, "pJ/byte",
            f"{_HOROWITZ}: 100 pJ per 64-bit access to a 1 MB SRAM (the survey's 8 KB / 32 KB / "
            "1 MB rows are 10 / 20 / 100 pJ; Ethos-U system SRAMs are hundreds of KB to MBs) "
            "/ 8 bytes.",
        ),
        EnergyConstant(
            "dram", 162.5, "pJ/byte",
            f"{_HOROWITZ}: DRAM 1.3-2.6 nJ per 64-bit access; the low end (1.3 nJ) / 8 bytes, as "
            "Ethos-U65 systems use LPDDR-class DRAM.",
        ),
        EnergyConstant(
            "offchip_flash", 990.0, "pJ/byte",
            "Eon Silicon Solution EN25QH128A 128 Mbit serial flash datasheet, Rev. C (2014), "
            "Features: 12 mA typical active current, 2.7-3.6 V supply, 80 MHz with four data bits "
            "(40 MB/s); 3.3 V x 12 mA / 40 MB/s = 0.99 nJ/byte.",
        ),
        EnergyConstant(
            "static_power", 0.0, "mW",
            "No published figure: Arm gives no static or leakage power for Ethos-U55/U65. 0 mW "
            "leaves the model dynamic-only; override with static_power_mw.",
        ),
    ]
}

# Vela summary-CSV memory areas -> the constant for a byte moved there.
MEMORY_AREA_CONSTANTS: Dict[str, str] = {
    "sram": "sram",
    "dram": "dram",
    "off_chip_flash": "offchip_flash",
}

_PJ_PER_MJ = 1e9


def energy_table() -> List[Dict[str, object]]:
    """The constants as JSON-able rows (for settings() and dataset metadata)."""
    return [asdict(row) for row in ENERGY_CONSTANTS.values()]


def ethos_u_energy_mj(
    macs: float,
    bytes_moved: Mapping[str, float],
    latency_ms: float,
    static_power_mw: float = ENERGY_CONSTANTS["static_power"].value,
) -> float:
    """Modelled energy of one inference, in mJ.

    ``bytes_moved`` maps a Vela memory area ("sram", "dram", "off_chip_flash") to the bytes read
    and written there. An area with traffic but no constant raises ValueError rather than being
    silently counted as free.
    """
    if macs < 0 or latency_ms < 0 or static_power_mw < 0:
        raise ValueError(
            f"energy inputs must be non-negative: macs={macs}, latency_ms={latency_ms}, "
            f"static_power_mw={static_power_mw}"
        )
    dynamic_pj = macs * ENERGY_CONSTANTS["int8_mac"].value
    for area, nbytes in bytes_moved.items():
        if nbytes < 0:
            raise ValueError(f"bytes moved in {area!r} is negative: {nbytes}")
        if nbytes == 0:
            continue
        constant = MEMORY_AREA_CONSTANTS.get(area)
        if constant is None:
            raise ValueError(
                f"no energy constant for memory area {area!r} ({nbytes:.0f} bytes moved); "
                f"modelled areas: {', '.join(MEMORY_AREA_CONSTANTS)}"
            )
        dynamic_pj += nbytes * ENERGY_CONSTANTS[constant].value
    # mW x ms = 1e-3 W x 1e-3 s = 1e-6 J = 1e-3 mJ.
    static_mj = static_power_mw * latency_ms * 1e-3
    return dynamic_pj / _PJ_PER_MJ + static_mj


__all__ = ["ENERGY_CONSTANTS", "EnergyConstant", "MEMORY_AREA_CONSTANTS", "energy_table", "ethos_u_energy_mj"]
