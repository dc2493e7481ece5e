<?php
/**
 * Plugin Name: wpnotify devsite loopback (TEST SITES ONLY)
 * Description: Lets a throwaway WordPress on 127.0.0.x fetch other loopback sites (to verify
 *              pingbacks) and issue Application Passwords over plain HTTP. Never install this
 *              on a real site: it switches off WordPress's private-address protection.
 */

// wp_http_validate_url() refuses 127/8 unless this filter says the host is external.
add_filter( 'http_request_host_is_external', '__return_true' );

// Application Passwords need HTTPS or WP_ENVIRONMENT_TYPE=local; test sites speak plain HTTP.
add_filter( 'wp_is_application_passwords_available', '__return_true' );
