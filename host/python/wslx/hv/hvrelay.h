/* hvrelay.h: the hvsim model's native hv_sock hot path (build/hv/libhvrelay.so, loaded by
 * wslx.hv.native through cffi, which reads this header: plain declarations only).
 *
 * Ring access (the host's side of a VMBus ring in guest memory; ring.py is the reference and
 * tests check both byte for byte): a ring is a control page and data pages, given as offsets
 * into one mapping; every index and length the guest wrote is checked before use.
 *
 * The relay: one pthread that owns the trap doorbell. It answers the fast HvCallSignalEvent
 * for the connection id of a channel attached to it, moves that channel's data between the
 * rings and the host socket, sets the event flag and raises the MSI-X as the Python model
 * does. Every other trap is forwarded, untouched, to the Python model: a callback on the relay's
 * thread (hvr_set_trap_handler), else a record in a pipe (struct hvr_note); a channel whose ring is broken stops, and the pipe says so (hvr_pump
 * returns its error). */

/* return codes (negative: the ring is broken; hvr_strerror names them) */
#define HVR_OK 0
#define HVR_SIGNAL 1         /* done; the peer must be signalled */
#define HVR_FULL 2           /* write: the packet does not fit now */
#define HVR_E_INDEX (-1)     /* write_index or read_index outside the data area or unaligned */
#define HVR_E_PARTIAL (-2)   /* fewer bytes between the indices than a packet */
#define HVR_E_DESC (-3)      /* a descriptor's offset8/len8 impossible for the bytes available */
#define HVR_E_PIPE (-4)      /* not an in-band packet with a pipe data header */
#define HVR_E_PIPE_SIZE (-5) /* pipe data_size beyond the packet */
#define HVR_E_ARG (-6)       /* a bad argument from the host (pages outside the mapping, ...) */
#define HVR_E_NOMEM (-7)
#define HVR_E_SYS (-8)       /* a system call failed (errno in the message) */

/* pipe records to the Python model */
#define HVR_NOTE_WAKE 0      /* value 0: look again */
#define HVR_NOTE_TRAP 1      /* value: the request seq the Python model must answer */
#define HVR_NOTE_BROKEN 2    /* value: the relid of a channel the relay stopped (hvr_pump) */
#define HVR_NOTE_RESCUE 3    /* value: a relid whose data only the tick moved (a lost wake-up) */

struct hvr_note {
    uint32_t kind;
    uint32_t value;
};

struct hvr_ring;
struct hvr;
/* answers request seq in the block (the Python model, through a cffi callback); called on the relay's
 * thread with the relay unlocked, so the answer may attach, detach, sync and pump */
typedef int (*hvr_trap_fn)(uint32_t seq);

const char *hvr_strerror(int code);

/* a ring over base[0..len): offsets[0] the control page, offsets[1..n-1] the data pages */
struct hvr_ring *hvr_ring_new(uint8_t *base, uint64_t len, const uint64_t *offsets, uint32_t n);
void hvr_ring_free(struct hvr_ring *r);
uint32_t hvr_ring_size(const struct hvr_ring *r);
/* next packet: 1 (fields out, payload copied up to cap bytes; *plen its full length), 0 empty, <0 */
int hvr_ring_peek(struct hvr_ring *r, uint16_t *type, uint16_t *flags, uint64_t *trans_id, uint8_t *payload,
                  uint32_t cap, uint32_t *plen, uint32_t *next_read);
/* move read_index: HVR_SIGNAL if the writer waits for the space now free, HVR_OK, or <0 */
int hvr_ring_commit(struct hvr_ring *r, uint32_t next_read);
/* one packet of head + data: HVR_SIGNAL / HVR_OK (written), HVR_FULL, or <0 */
int hvr_ring_write(struct hvr_ring *r, uint16_t type, const uint8_t *head, uint32_t head_len, const uint8_t *data,
                   uint32_t data_len, uint64_t trans_id, uint16_t flags);
uint32_t hvr_packet_size(uint32_t payload_len);
void hvr_ring_want_space(struct hvr_ring *r, uint32_t total);
void hvr_ring_clear_want(struct hvr_ring *r);

/* the relay: shm_fd and ram_fd are mapped here; trap_efd is the guest's doorbell (owned by the
 * relay while it runs); guest_efd[] raise the MSI-X entries; note_fd the pipe's write end */
struct hvr *hvr_new(int shm_fd, uint64_t shm_size, int ram_fd, uint64_t ram_size, int trap_efd,
                    const int *guest_efd, uint32_t n_guest_efd, int note_fd);
int hvr_start(struct hvr *h);
/* forwarded traps go to fn on the relay's thread instead of a HVR_NOTE_TRAP (one wake-up per trap) */
void hvr_set_trap_handler(struct hvr *h, hvr_trap_fn fn);
void hvr_stop(struct hvr *h);  /* joins the thread; channels stay attached until detached or freed */
void hvr_free(struct hvr *h);  /* stops the thread first */
/* what the Python model owns, pushed after every trap that may change it: the offset of the
 * message SINT's event-flag area in the RAM file (-1: no SIEFP), that SINT's register, and
 * whether a fast SignalEvent may be answered here at all (hypercall page, privilege) */
void hvr_set_synic(struct hvr *h, int64_t sief_area_offset, uint64_t sint_reg, int signal_ok);
/* hand an open hv_sock channel to the relay: ring pages as RAM-file offsets (control first); the
 * buffer limits and the host bytes per packet are hvsock.py's */
int hvr_attach(struct hvr *h, uint32_t relid, uint32_t connection_id, int sock_fd, const uint64_t *g2h,
               uint32_t n_g2h, const uint64_t *h2g, uint32_t n_h2g, uint32_t to_host_limit,
               uint32_t from_host_limit, uint32_t chunk);
/* take it back (a last pump of what the guest wrote first); the caller closes the socket */
void hvr_detach(struct hvr *h, uint32_t relid);
/* move what can move now (a SignalEvent the Python model answered, its service pass): 0, or the
 * HVR_E_* that stopped the channel, its message in msg */
int hvr_pump(struct hvr *h, uint32_t relid, char *msg, uint32_t cap);
/* counters: answered, forwarded, injected, dropped_vectors, answer_irqs, bytes_to_host, bytes_to_guest,
 * rescues (data only the safety-net tick moved: lost wake-ups, 0 when the signal rules hold) */
void hvr_stats(struct hvr *h, uint64_t *out8);
