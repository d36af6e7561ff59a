import { createRouter, createWebHistory, type RouteRecordRaw, type Router, type RouterHistory } from 'vue-router'
import type { Pinia } from 'pinia'
import { useAuthStore } from '@/stores/auth'
import HomeView from '@/views/HomeView.vue'

declare module 'vue-router' {
  interface RouteMeta {
    /** Redirect to /login when signed out. */
    requiresAuth?: boolean
    /** Redirect home when signed in (login, register). */
    guestOnly?: boolean
  }
}

export const routes: RouteRecordRaw[] = [
  { path: '/', name: 'home', component: HomeView },
  { path: '/feed', name: 'feed', component: HomeView, meta: { requiresAuth: true } },
  { path: '/tag/:tag', name: 'tag', component: HomeView },
  { path: '/login', name: 'login', component: () => import('@/views/LoginView.vue'), meta: { guestOnly: true } },
  {
    path: '/register',
    name: 'register',
    component: () => import('@/views/RegisterView.vue'),
    meta: { guestOnly: true },
  },
  {
    path: '/settings',
    name: 'settings',
    component: () => import('@/views/SettingsView.vue'),
    meta: { requiresAuth: true },
  },
  {
    path: '/editor/:slug?',
    name: 'editor',
    component: () => import('@/views/EditorView.vue'),
    props: true,
    meta: { requiresAuth: true },
  },
  { path: '/article/:slug', name: 'article', component: () => import('@/views/ArticleView.vue'), props: true },
  {
    path: '/profile/:username',
    name: 'profile',
    component: () => import('@/views/ProfileView.vue'),
    props: (route) => ({ username: String(route.params.username), favorites: false }),
  },
  {
    path: '/profile/:username/favorites',
    name: 'profile-favorites',
    component: () => import('@/views/ProfileView.vue'),
    props: (route) => ({ username: String(route.params.username), favorites: true }),
  },
  { path: '/try', name: 'try', component: () => import('@/views/TryView.vue') },
  { path: '/dashboard', name: 'dashboard', component: () => import('@/views/DashboardView.vue') },
  { path: '/:pathMatch(.*)*', name: 'not-found', component: () => import('@/views/NotFoundView.vue') },
]

export function createAppRouter(pinia: Pinia, history: RouterHistory = createWebHistory()): Router {
  const router = createRouter({
    history,
    routes,
    linkActiveClass: 'active',
    linkExactActiveClass: 'active',
    scrollBehavior: (_to, _from, saved) => saved ?? { top: 0 },
  })

  router.beforeEach(async (to) => {
    const auth = useAuthStore(pinia)
    await auth.ensureLoaded()
    if (to.meta.requiresAuth && !auth.isLoggedIn) return { name: 'login', query: { redirect: to.fullPath } }
    if (to.meta.guestOnly && auth.isLoggedIn) return { name: 'home' }
    return true
  })

  return router
}
