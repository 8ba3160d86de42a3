// A Modbus TCP server for the whole-process benchmarks (tests/bench/agent_modbus.sh), run as a
// process of its own so that its CPU is not the agent's: libmodbus's modbus_receive/modbus_reply
// for any unit, several clients at once (select), on 127.0.0.1:PORT. Every unit sees the same
// 1,000 coils, discrete inputs, holding and input registers; they change once a second.
//   build/tests/bench/modbus_server PORT

#include <modbus.h>
#include <signal.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

constexpr int kSize = 1000;
using Clock = std::chrono::steady_clock;

void update(modbus_mapping_t* m, unsigned tick) {
  for (int i = 0; i < kSize; ++i) {
    m->tab_registers[i] = static_cast<std::uint16_t>(tick + i);
    m->tab_input_registers[i] = static_cast<std::uint16_t>(tick * 3 + i);
    m->tab_bits[i] = static_cast<std::uint8_t>((tick + i) & 1);
    m->tab_input_bits[i] = static_cast<std::uint8_t>(((tick + i) >> 1) & 1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int port = argc == 2 ? std::atoi(argv[1]) : 0;
  if (port <= 0 || port > 65535) {
    std::fprintf(stderr, "usage: %s PORT\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);  // a client that hangs up is dropped, not fatal
  modbus_t* ctx = modbus_new_tcp("127.0.0.1", port);
  modbus_mapping_t* map = modbus_mapping_new(kSize, kSize, kSize, kSize);
  if (ctx == nullptr || map == nullptr) {
    std::fprintf(stderr, "modbus_server: %s\n", modbus_strerror(errno));
    return 1;
  }
  modbus_set_indication_timeout(ctx, 1, 0);  // a half-sent request does not stall the others
  const int listener = modbus_tcp_listen(ctx, 16);
  if (listener < 0) {
    std::fprintf(stderr, "modbus_server: listen on 127.0.0.1:%d: %s\n", port,
                 modbus_strerror(errno));
    return 1;
  }
  std::fprintf(stderr, "modbus_server: listening on 127.0.0.1:%d\n", port);

  unsigned tick = 0;
  update(map, tick);
  auto next = Clock::now() + std::chrono::seconds(1);
  std::vector<int> clients;
  std::uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
  for (;;) {
    fd_set readable;
    FD_ZERO(&readable);
    FD_SET(listener, &readable);
    int top = listener;
    for (int fd : clients) {
      FD_SET(fd, &readable);
      if (fd > top) top = fd;
    }
    const auto wait = std::chrono::duration_cast<std::chrono::microseconds>(next - Clock::now());
    timeval tv{0, 0};
    if (wait.count() > 0) {
      tv.tv_sec = static_cast<time_t>(wait.count() / 1000000);
      tv.tv_usec = static_cast<suseconds_t>(wait.count() % 1000000);
    }
    const int ready = select(top + 1, &readable, nullptr, nullptr, &tv);
    if (ready < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "modbus_server: select: %s\n", std::strerror(errno));
      return 1;
    }
    if (Clock::now() >= next) {
      update(map, ++tick);
      next += std::chrono::seconds(1);
    }
    if (ready == 0) continue;
    if (FD_ISSET(listener, &readable)) {
      const int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) clients.push_back(fd);
    }
    for (auto it = clients.begin(); it != clients.end();) {
      if (!FD_ISSET(*it, &readable)) {
        ++it;
        continue;
      }
      modbus_set_socket(ctx, *it);
      const int n = modbus_receive(ctx, query);
      if (n > 0) {
        // Answer as whichever unit was asked (the header's last byte is the unit id).
        modbus_set_slave(ctx, query[modbus_get_header_length(ctx) - 1]);
        modbus_reply(ctx, query, n, map);
      } else if (n < 0) {  // the client went away, or sent something that is not Modbus
        close(*it);
        it = clients.erase(it);
        continue;
      }
      ++it;
    }
  }
}
