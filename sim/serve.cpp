// The Verilated memxbar top behind a TCP port and a pseudo-terminal, through its UART pins.
//
// A software UART at the gateware's bit period turns bytes from the clients into waveforms
// on `rx` and samples `tx` back into bytes, so the device's real UART is exercised.
// Usage: Vtop DIVISOR TCP_PORT   (TCP_PORT 0 picks a free one)
// Prints "tcp PORT" and "pty PATH" lines, then serves until killed or stdin closes.
// Verilator escapes nothing here: the top's ports are plain `rx`, `tx`, `clk`, `rst`.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <deque>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

namespace {

int listen_tcp(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) || listen(fd, 1)) {
        perror("memxbar sim: cannot listen");
        exit(2);
    }
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
    std::printf("tcp %d\n", ntohs(addr.sin_port));
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

int open_pty() {
    int fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (fd < 0 || grantpt(fd) || unlockpt(fd)) return -1;
    termios tio{};
    tcgetattr(fd, &tio);
    cfmakeraw(&tio);
    tcsetattr(fd, TCSANOW, &tio);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    std::printf("pty %s\n", ptsname(fd));
    return fd;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s DIVISOR TCP_PORT\n", argv[0]);
        return 2;
    }
    const long divisor = std::atol(argv[1]);
    int listener = listen_tcp(std::atoi(argv[2]));
    int pty = open_pty();
    std::printf("ready\n");
    std::fflush(stdout);
    fcntl(0, F_SETFL, O_NONBLOCK);

    auto *top = new Vtop;
    auto tick = [top] {
        top->clk = 0;
        top->eval();
        top->clk = 1;
        top->eval();
    };
    top->rx = 1;
    top->rst = 1;
    for (int i = 0; i < 4; i++) tick();
    top->rst = 0;

    int client = -1;
    std::deque<unsigned char> to_device;
    // host -> rx: shift register of the frame being sent, bit timer
    int rx_bits = 0, rx_frame = 0;
    long rx_timer = 0;
    // tx -> host: receiver state
    int tx_state = 0;  // 0 idle, 1..8 data bits, 9 stop
    long tx_timer = 0;
    int tx_byte = 0;
    std::vector<unsigned char> from_device;
    long quiet = 0;  // cycles without activity on either pin
    unsigned char buf[4096];

    for (unsigned long cycle = 0;; cycle++) {
        if ((cycle & 1023) == 0 || quiet > 200000) {
            if (!from_device.empty()) {
                if (client >= 0 && send(client, from_device.data(), from_device.size(), MSG_NOSIGNAL) < 0) {
                    close(client);
                    client = -1;
                }
                if (pty >= 0) (void)!write(pty, from_device.data(), from_device.size());
                from_device.clear();
            }
            std::vector<pollfd> fds = {{listener, POLLIN, 0}, {0, POLLIN, 0}};
            if (client >= 0) fds.push_back({client, POLLIN, 0});
            if (pty >= 0) fds.push_back({pty, POLLIN, 0});
            // Nothing on the wire for a long while: sleep until a client speaks.
            int wait_ms = (quiet > 200000 && to_device.empty() && rx_bits == 0) ? 50 : 0;
            poll(fds.data(), fds.size(), wait_ms);
            if (fds[1].revents & (POLLIN | POLLHUP)) {
                ssize_t n = read(0, buf, sizeof buf);
                if (n == 0) break;  // the parent went away
            }
            if (fds[0].revents & POLLIN) {
                int fd = accept(listener, nullptr, nullptr);
                if (fd >= 0) {
                    if (client >= 0) close(client);  // the newest client wins
                    client = fd;
                    int one = 1;
                    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    fcntl(client, F_SETFL, O_NONBLOCK);
                }
            }
            for (size_t i = 2; i < fds.size(); i++) {
                if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                ssize_t n = read(fds[i].fd, buf, sizeof buf);
                if (n > 0) {
                    to_device.insert(to_device.end(), buf, buf + n);
                } else if (fds[i].fd == client && n == 0) {
                    close(client);
                    client = -1;
                }
            }
            if (wait_ms && !to_device.empty()) quiet = 0;
        }

        // Drive rx: start bit, 8 data bits LSB first, stop bit, each `divisor` cycles.
        if (rx_bits == 0 && !to_device.empty()) {
            rx_frame = (1 << 9) | (to_device.front() << 1);
            to_device.pop_front();
            rx_bits = 10;
            rx_timer = divisor;
        }
        if (rx_bits) {
            top->rx = rx_frame & 1;
            if (--rx_timer == 0) {
                rx_frame >>= 1;
                rx_timer = divisor;
                rx_bits--;
            }
        } else {
            top->rx = 1;
        }

        tick();

        // Sample tx in the middle of each bit.
        int tx = top->tx;
        if (tx_state == 0) {
            if (!tx) {
                tx_state = 1;
                tx_timer = divisor + divisor / 2;
                tx_byte = 0;
            }
        } else if (--tx_timer == 0) {
            if (tx_state <= 8) {
                tx_byte |= tx << (tx_state - 1);
                tx_state++;
                tx_timer = divisor;
            } else {
                if (tx) from_device.push_back(static_cast<unsigned char>(tx_byte));
                tx_state = 0;
            }
        }
        quiet = (rx_bits || tx_state || !tx) ? 0 : quiet + 1;
    }
    top->final();
    delete top;
    return 0;
}
