/*
 * Prints the size of every UCP struct unimem passes to UCX, and the offset of every field,
 * as the installed headers (<ucp/api/ucp.h>) define them, plus the UCP API version and the
 * constants unimem uses. The output is recorded in abi-<major>.<minor>.txt, which
 * src/ffi/ucx.rs checks its declarations against (unit test `abi_matches_the_headers`);
 * .ci/run compiles this file against the installed headers and compares the output with
 * the record.
 *
 *     cc -o /tmp/ucx-abi tests/ucx/abi.c && /tmp/ucx-abi > tests/ucx/abi-1.13.txt
 */
#include <stddef.h>
#include <stdio.h>
#include <ucp/api/ucp.h>

#define SIZE(t) printf("size %s %zu\n", #t, sizeof(t))
#define FIELD(t, f) printf("offset %s.%s %zu\n", #t, #f, offsetof(t, f))
#define CONST(c) printf("const %s %lld\n", #c, (long long)(c))

int main(void)
{
    printf("version %d.%d\n", UCP_API_MAJOR, UCP_API_MINOR);

    SIZE(ucp_params_t);
    FIELD(ucp_params_t, field_mask);
    FIELD(ucp_params_t, features);
    FIELD(ucp_params_t, request_size);
    FIELD(ucp_params_t, request_init);
    FIELD(ucp_params_t, request_cleanup);
    FIELD(ucp_params_t, tag_sender_mask);
    FIELD(ucp_params_t, mt_workers_shared);
    FIELD(ucp_params_t, estimated_num_eps);
    FIELD(ucp_params_t, estimated_num_ppn);
    FIELD(ucp_params_t, name);

    SIZE(ucp_worker_params_t);
    FIELD(ucp_worker_params_t, field_mask);
    FIELD(ucp_worker_params_t, thread_mode);
    FIELD(ucp_worker_params_t, cpu_mask);
    FIELD(ucp_worker_params_t, events);
    FIELD(ucp_worker_params_t, user_data);
    FIELD(ucp_worker_params_t, event_fd);
    FIELD(ucp_worker_params_t, flags);
    FIELD(ucp_worker_params_t, name);
    FIELD(ucp_worker_params_t, am_alignment);
    FIELD(ucp_worker_params_t, client_id);

    SIZE(ucp_ep_params_t);
    FIELD(ucp_ep_params_t, field_mask);
    FIELD(ucp_ep_params_t, address);
    FIELD(ucp_ep_params_t, err_mode);
    FIELD(ucp_ep_params_t, err_handler);
    FIELD(ucp_ep_params_t, user_data);
    FIELD(ucp_ep_params_t, flags);
    FIELD(ucp_ep_params_t, sockaddr);
    FIELD(ucp_ep_params_t, conn_request);
    FIELD(ucp_ep_params_t, name);
    FIELD(ucp_ep_params_t, local_sockaddr);

    SIZE(ucp_mem_map_params_t);
    FIELD(ucp_mem_map_params_t, field_mask);
    FIELD(ucp_mem_map_params_t, address);
    FIELD(ucp_mem_map_params_t, length);
    FIELD(ucp_mem_map_params_t, flags);
    FIELD(ucp_mem_map_params_t, prot);
    FIELD(ucp_mem_map_params_t, memory_type);

    SIZE(ucp_request_param_t);
    FIELD(ucp_request_param_t, op_attr_mask);
    FIELD(ucp_request_param_t, flags);
    FIELD(ucp_request_param_t, request);
    FIELD(ucp_request_param_t, cb);
    FIELD(ucp_request_param_t, datatype);
    FIELD(ucp_request_param_t, user_data);
    FIELD(ucp_request_param_t, reply_buffer);
    FIELD(ucp_request_param_t, memory_type);
    FIELD(ucp_request_param_t, recv_info);
    FIELD(ucp_request_param_t, memh);

    SIZE(ucs_status_t);
    SIZE(ucs_thread_mode_t);
    SIZE(ucs_memory_type_t);
    SIZE(ucp_err_handling_mode_t);
    SIZE(ucp_datatype_t);

    CONST(UCP_PARAM_FIELD_FEATURES);
    CONST(UCP_FEATURE_RMA);
    CONST(UCP_WORKER_PARAM_FIELD_THREAD_MODE);
    CONST(UCS_THREAD_MODE_SINGLE);
    CONST(UCP_EP_PARAM_FIELD_REMOTE_ADDRESS);
    CONST(UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE);
    CONST(UCP_EP_PARAM_FIELD_ERR_HANDLER);
    CONST(UCP_ERR_HANDLING_MODE_PEER);
    CONST(UCP_EP_CLOSE_FLAG_FORCE);
    CONST(UCP_MEM_MAP_PARAM_FIELD_ADDRESS);
    CONST(UCP_MEM_MAP_PARAM_FIELD_LENGTH);
    CONST(UCP_MEM_MAP_PARAM_FIELD_PROT);
    CONST(UCP_MEM_MAP_PARAM_FIELD_MEMORY_TYPE);
    CONST(UCP_MEM_MAP_PROT_LOCAL_READ);
    CONST(UCP_MEM_MAP_PROT_LOCAL_WRITE);
    CONST(UCP_MEM_MAP_PROT_REMOTE_READ);
    CONST(UCP_MEM_MAP_PROT_REMOTE_WRITE);
    CONST(UCS_MEMORY_TYPE_HOST);
    CONST(UCP_OP_ATTR_FIELD_FLAGS);
    CONST(UCP_OP_ATTR_FIELD_MEMH);
    CONST(UCS_OK);
    CONST(UCS_INPROGRESS);
    CONST(UCS_ERR_LAST);
    return 0;
}
