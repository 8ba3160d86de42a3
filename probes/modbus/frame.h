#pragma once

// Checking the answers devices send, on plain byte buffers: the RTU frames our RTU-over-TCP
// transport reads from the socket, and the Modbus TCP ADUs libmodbus hands back after a stale
// answer. No I/O here, so the fuzz targets can feed them anything.

#include <cstddef>
#include <cstdint>

#include "modbus/link.h"

namespace dozor::probes::modbus {

/// Function code of a read of `reg`: 1 coils, 2 discrete inputs, 3 holding, 4 input registers.
int function_of(RegisterType reg);
/// Data bytes the answer to `x` carries: one bit per coil or input, two bytes per register.
int answer_bytes(const Exchange& x);

/// Length of the RTU reply that starts with the `have` bytes at `head`: 5 (address, function,
/// exception code, CRC) until the third byte shows a normal answer, then 5 + its byte count.
std::size_t rtu_reply_size(const std::uint8_t* head, std::size_t have);

/// Checks one complete RTU reply (address, function, byte count, data, CRC low, CRC high) to
/// the read `x`: CRC, unit, function, byte count. When it is a normal answer, `regs` (registers)
/// or `bits` (coils, discrete inputs, one byte each) get x.count values; otherwise neither is
/// touched. A Modbus exception comes back as Reply::Status::exception.
Reply parse_rtu_reply(const std::uint8_t* frame, std::size_t n, const Exchange& x,
                      std::uint16_t* regs, std::uint8_t* bits);

/// The same for a Modbus TCP ADU (MBAP header, unit, function, byte count, data) of `n` bytes;
/// its transaction id is the caller's to check.
Reply parse_tcp_reply(const std::uint8_t* adu, std::size_t n, const Exchange& x,
                      std::uint16_t* regs, std::uint8_t* bits);

}  // namespace dozor::probes::modbus
