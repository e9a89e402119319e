// Linux interfaces Swift's Glibc module leaves out, for the gateway's own event handling beside
// NIO (IdleParking): epoll, eventfd, and malloc_trim to give freed memory back.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <malloc.h>
