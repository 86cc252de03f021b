// The Verilated memxbar device behind a TCP port and a pseudo-terminal.
//
// Two builds of this file, one per top (memxbar.hdl.top):
// - MEMXBAR_BYTE_TOP: the byte-level top. Bytes from the clients go straight into the frame
//   receiver's stream and the transmitter's bytes straight out, at most one per cycle.
// - otherwise the pin-level top: a software UART at the gateware's bit period turns bytes
//   into waveforms on `rx` and samples `tx` back into bytes, so the device's UART is exercised.
// While the design is busy the clock runs flat out (the clients are looked at every 1024
// cycles, without waiting); once the top says `idle` and the harness holds no byte, nothing
// can change until a byte arrives, so the harness blocks in poll() instead of ticking.
// Replies go to the client (TCP or pty) that sent the last request bytes.
//
// Usage: Vtop DIVISOR TCP_PORT [TRACE.fst]   (DIVISOR is ignored by the byte-level top;
// TCP_PORT 0 picks a free one; a trace file needs a build with --trace-fst)
// Prints "tcp PORT" and "pty PATH" lines, then "ready", and serves until SIGTERM/SIGINT or
// until stdin closes (the parent went away).
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <vector>

#include "Vtop.h"
#include "verilated.h"
#if VM_TRACE_FST
#include "verilated_fst_c.h"
#endif

namespace {

volatile sig_atomic_t stop_requested = 0;

void request_stop(int) { stop_requested = 1; }

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

// The master side of a raw pty. We keep a slave descriptor open ourselves: without one the
// master reports POLLHUP whenever no client has the pty open, and poll() would never block.
int open_pty(int *slave) {
    int fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (fd < 0 || grantpt(fd) || unlockpt(fd)) return -1;
    *slave = open(ptsname(fd), O_RDWR | O_NOCTTY);
    termios tio{};
    tcgetattr(fd, &tio);
    cfmakeraw(&tio);
    tcsetattr(fd, TCSANOW, &tio);
    if (*slave >= 0) tcsetattr(*slave, TCSANOW, &tio);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    std::printf("pty %s\n", ptsname(fd));
    return fd;
}

// Bytes for one client, written as far as its descriptor takes them; the rest waits.
struct Outbox {
    std::vector<unsigned char> pending;
    size_t limit;  // a pty nobody reads fills up: past this many bytes they are dropped

    // false: the descriptor failed for good
    bool flush(int fd, bool is_socket) {
        while (!pending.empty()) {
            ssize_t n = is_socket ? send(fd, pending.data(), pending.size(), MSG_NOSIGNAL)
                                  : write(fd, pending.data(), pending.size());
            if (n > 0) {
                pending.erase(pending.begin(), pending.begin() + n);
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                if (pending.size() > limit) pending.clear();
                return true;
            } else {
                pending.clear();
                return false;
            }
        }
        return true;
    }
};

#ifdef MEMXBAR_BYTE_TOP
// Verilator escapes the "__" of Amaranth's stream port names (bytes_in__valid) as "___05F".
#define bytes_in__valid bytes_in___05Fvalid
#define bytes_in__ready bytes_in___05Fready
#define bytes_in__payload bytes_in___05Fpayload
#define bytes_out__valid bytes_out___05Fvalid
#define bytes_out__ready bytes_out___05Fready
#define bytes_out__payload bytes_out___05Fpayload

// The byte-level link: one byte offered per cycle from the host's queue, every byte taken.
struct Link {
    explicit Link(long) {}
    bool holds_nothing() const { return true; }
    // before the rising edge (inputs set, combinational outputs settled): what transfers
    void drive(Vtop *top, const std::deque<unsigned char> &to_device, bool out_room) {
        top->bytes_in__valid = !to_device.empty();
        if (!to_device.empty()) top->bytes_in__payload = to_device.front();
        top->bytes_out__ready = out_room;
    }
    // after the clk=0 eval: record transfers that the rising edge will make
    bool taken = false, given = false;
    unsigned char given_byte = 0;
    void settle(Vtop *top) {
        taken = top->bytes_in__valid && top->bytes_in__ready;
        given = top->bytes_out__valid && top->bytes_out__ready;
        given_byte = top->bytes_out__payload;
    }
    // after the rising edge; returns 1 if a host byte was consumed, stores a device byte
    bool after_edge(Vtop *, std::deque<unsigned char> &to_device, std::vector<unsigned char> &out,
                    bool *delimiter) {
        if (given) {
            out.push_back(given_byte);
            *delimiter = given_byte == 0;
        }
        if (taken) to_device.pop_front();
        return taken;
    }
    void reset(Vtop *top) { top->bytes_in__valid = 0; top->bytes_out__ready = 0; }
};
#else
// The pin-level link: 8N1 at `divisor` cycles per bit both ways.
struct Link {
    explicit Link(long divisor) : divisor(divisor) {}
    long divisor;
    int rx_bits = 0, rx_frame = 0;  // host -> rx: bits left of the frame being sent
    long rx_timer = 0;
    int tx_state = 0;  // tx -> host: 0 idle, 1..8 data bits, 9 stop
    long tx_timer = 0;
    int tx_byte = 0;
    bool holds_nothing() const { return rx_bits == 0 && tx_state == 0; }
    void drive(Vtop *top, std::deque<unsigned char> &to_device, bool) {
        if (rx_bits == 0 && !to_device.empty()) {
            rx_frame = (1 << 9) | (to_device.front() << 1);
            to_device.pop_front();
            rx_bits = 10;
            rx_timer = divisor;
        }
        top->rx = rx_bits ? (rx_frame & 1) : 1;
    }
    void settle(Vtop *) {}
    bool after_edge(Vtop *top, std::deque<unsigned char> &, std::vector<unsigned char> &out,
                    bool *delimiter) {
        if (rx_bits && --rx_timer == 0) {
            rx_frame >>= 1;
            rx_timer = divisor;
            rx_bits--;
        }
        // sample tx in the middle of each bit
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
                if (tx) {
                    out.push_back(static_cast<unsigned char>(tx_byte));
                    *delimiter = tx_byte == 0;
                }
                tx_state = 0;
            }
        }
        return false;
    }
    void reset(Vtop *top) { top->rx = 1; }
};
#endif

}  // namespace

int main(int argc, char **argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s DIVISOR TCP_PORT [TRACE.fst]\n", argv[0]);
        return 2;
    }
    struct sigaction action {};
    action.sa_handler = request_stop;  // no SA_RESTART: a blocking poll() returns at once
    sigaction(SIGTERM, &action, nullptr);
    sigaction(SIGINT, &action, nullptr);

    Link link(std::atol(argv[1]));
    int listener = listen_tcp(std::atoi(argv[2]));
    int pty_slave = -1;
    int pty = open_pty(&pty_slave);

    auto *top = new Vtop;
#if VM_TRACE_FST
    VerilatedFstC *trace = nullptr;
    if (argc > 3) {
        Verilated::traceEverOn(true);
        trace = new VerilatedFstC;
        top->trace(trace, 99);
        trace->open(argv[3]);
    }
#else
    if (argc > 3) {
        std::fprintf(stderr, "memxbar sim: this build has no tracing (build with --trace-fst)\n");
        return 2;
    }
#endif
    std::printf("ready\n");
    std::fflush(stdout);
    fcntl(0, F_SETFL, O_NONBLOCK);

    uint64_t time = 0;  // trace time: 10 units per clock cycle
    auto half = [&](int clk) {
        top->clk = clk;
        top->eval();
#if VM_TRACE_FST
        if (trace) trace->dump(time);
#endif
        time += 5;
    };
    // The top has no reset port (memxbar.sim.device): its registers start at their reset values.
    link.reset(top);
    half(0);

    int client = -1;
    int reply_to = -1;  // the descriptor whose bytes the device saw last
    std::deque<unsigned char> to_device;
    std::vector<unsigned char> from_device;
    Outbox client_out{{}, SIZE_MAX}, pty_out{{}, 1 << 16};
    unsigned char buf[4096];
    bool flush_now = false;

    // Move replies on, accept a client, read requests; wait up to `wait_ms` for any of it.
    // Returns false when the parent went away.
    auto service = [&](int wait_ms) {
        if (!from_device.empty()) {
            bool to_pty = pty >= 0 && reply_to == pty;
            Outbox &box = to_pty ? pty_out : client_out;
            if (to_pty || client >= 0)
                box.pending.insert(box.pending.end(), from_device.begin(), from_device.end());
            from_device.clear();
        }
        if (client >= 0 && !client_out.flush(client, true)) {
            close(client);
            client = -1;
        }
        if (pty >= 0) pty_out.flush(pty, false);
        pollfd fds[4] = {{listener, POLLIN, 0}, {0, POLLIN, 0}, {pty, POLLIN, 0}, {client, POLLIN, 0}};
        if (!pty_out.pending.empty()) fds[2].events |= POLLOUT;
        if (!client_out.pending.empty()) fds[3].events |= POLLOUT;
        int nfds = client >= 0 ? 4 : 3;
        if (poll(fds, nfds, wait_ms) <= 0) return true;  // nothing, a timeout or a signal
        if (fds[1].revents & (POLLIN | POLLHUP)) {
            ssize_t n = read(0, buf, sizeof buf);
            if (n == 0) return false;
        }
        if (fds[0].revents & POLLIN) {
            int fd = accept(listener, nullptr, nullptr);
            if (fd >= 0) {
                if (client >= 0) close(client);  // the newest client wins
                client = fd;
                client_out.pending.clear();
                int one = 1;
                setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                fcntl(client, F_SETFL, O_NONBLOCK);
            }
        }
        for (int i = 2; i < nfds; i++) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                to_device.insert(to_device.end(), buf, buf + n);
                reply_to = fds[i].fd;
            } else if (i == 3 && (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))) {
                close(client);
                client = -1;
            }
        }
        return true;
    };

    for (uint64_t cycle = 0; !stop_requested; cycle++) {
        bool idle = top->idle && to_device.empty() && link.holds_nothing();
        if (idle || flush_now || (cycle & 1023) == 0) {
            flush_now = false;
            // Idle: nothing changes until a byte comes, so sleep in poll (1 s at a time, so
            // a signal or a closed stdin is seen); busy: only look, never wait.
            if (!service(idle ? 1000 : 0)) break;
            if (idle && to_device.empty()) {
                cycle--;
                continue;
            }
        }
        link.drive(top, to_device, client_out.pending.size() < (1u << 20));
        half(0);
        link.settle(top);
        half(1);
        bool delimiter = false;
        link.after_edge(top, to_device, from_device, &delimiter);
        flush_now = delimiter;  // a reply is complete: hand it out without waiting
    }
#if VM_TRACE_FST
    if (trace) {
        trace->close();
        delete trace;
    }
#endif
    top->final();
    delete top;
    return 0;
}
